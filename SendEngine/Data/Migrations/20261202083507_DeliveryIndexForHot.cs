using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class DeliveryIndexForHot : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The status leaves every index so that the 'sending' mark can be a HOT update: the delivery index holds the
            // generated is_open instead (computed for existing rows as the column is added, which rewrites the table
            // once), and fillfactor 70 leaves room on new pages for the mark's new row version. In-flight jobs go on
            // from their claim cursor.
            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_status_id",
                table: "send_job_recipients");

            migrationBuilder.AlterTable(
                name: "send_job_recipients")
                .Annotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.AddColumn<bool>(
                name: "is_open",
                table: "send_job_recipients",
                type: "boolean",
                nullable: false,
                computedColumnSql: "status IN ('pending', 'sending')",
                stored: true);

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_is_open_id",
                table: "send_job_recipients",
                columns: new[] { "job_id", "is_open", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_is_open_id",
                table: "send_job_recipients");

            migrationBuilder.DropColumn(
                name: "is_open",
                table: "send_job_recipients");

            migrationBuilder.AlterTable(
                name: "send_job_recipients")
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_status_id",
                table: "send_job_recipients",
                columns: new[] { "job_id", "status", "id" });
        }
    }
}
