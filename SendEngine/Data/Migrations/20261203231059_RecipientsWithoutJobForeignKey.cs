using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class RecipientsWithoutJobForeignKey : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropForeignKey(
                name: "fk_send_job_recipients_send_jobs_job_id",
                table: "send_job_recipients");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddForeignKey(
                name: "fk_send_job_recipients_send_jobs_job_id",
                table: "send_job_recipients",
                column: "job_id",
                principalTable: "send_jobs",
                principalColumn: "id",
                onDelete: ReferentialAction.Cascade);
        }
    }
}
