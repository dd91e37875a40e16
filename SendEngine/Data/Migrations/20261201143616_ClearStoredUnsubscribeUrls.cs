using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class ClearStoredUnsubscribeUrls : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Rows snapshotted before links were minted per message still held working unsubscribe URLs. Every run opens
            // the job's link key and mints the same kind of link for a row without one, so the stored copies can go.
            migrationBuilder.Sql("UPDATE send_job_recipients SET unsubscribe_url = NULL WHERE unsubscribe_url IS NOT NULL;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // Nothing to restore: the links are minted again when needed.
        }
    }
}
