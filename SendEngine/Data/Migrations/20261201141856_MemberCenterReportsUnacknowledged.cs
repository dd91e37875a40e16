using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class MemberCenterReportsUnacknowledged : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_member_center_reports_unacknowledged",
                table: "member_center_reports",
                columns: new[] { "tenant_id", "email" },
                filter: "completed_at IS NULL OR outcome = 'failed'");

            // Reports given up before (out of attempts) were never acknowledged: queue every failed one again. Those
            // Member Center refuses are refused again at the first try and stay failed; the others are delivered now.
            migrationBuilder.Sql("UPDATE member_center_reports SET completed_at = NULL, outcome = NULL, next_attempt_at = now() WHERE outcome = 'failed';");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_member_center_reports_unacknowledged",
                table: "member_center_reports");
        }
    }
}
