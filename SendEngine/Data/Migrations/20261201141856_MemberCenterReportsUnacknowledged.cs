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
