using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class ClaimByReading : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "claim_cursor",
                table: "send_jobs",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "runner_lease_until",
                table: "send_jobs",
                type: "timestamp with time zone",
                nullable: true);

            // Rows are no longer claimed: a row claimed but not yet attempted when the old code stopped is pending again
            // (read again by the job's next runner). An old runner still running cannot send it: its mark needs 'claimed'.
            migrationBuilder.Sql("UPDATE send_job_recipients SET status = 'pending', claimed_by = NULL, lease_until = NULL WHERE status = 'claimed';");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // The old code claims pending rows again; rows in 'sending' keep their lease and are recovered as before.
            migrationBuilder.DropColumn(
                name: "claim_cursor",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "runner_lease_until",
                table: "send_jobs");
        }
    }
}
