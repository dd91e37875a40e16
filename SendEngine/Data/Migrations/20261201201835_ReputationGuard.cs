using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class ReputationGuard : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "list_checked",
                table: "send_jobs",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "paused_by",
                table: "send_jobs",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "throttled_until",
                table: "send_jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "reputation_counts",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    hour = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    source_id = table.Column<Guid>(type: "uuid", nullable: false),
                    sent = table.Column<long>(type: "bigint", nullable: false),
                    hard_bounces = table.Column<long>(type: "bigint", nullable: false),
                    complaints = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_reputation_counts", x => new { x.tenant_id, x.hour, x.source_id });
                });

            migrationBuilder.CreateTable(
                name: "send_counters",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    window_start = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    messages = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_send_counters", x => new { x.tenant_id, x.window_start });
                });

            migrationBuilder.CreateTable(
                name: "tenant_reputation",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    state = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    reason = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true),
                    bulk_paused = table.Column<bool>(type: "boolean", nullable: false),
                    transactional_paused = table.Column<bool>(type: "boolean", nullable: false),
                    paused_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    changed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    note = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true),
                    baseline_hour = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    baseline_sent = table.Column<long>(type: "bigint", nullable: false),
                    baseline_hard_bounces = table.Column<long>(type: "bigint", nullable: false),
                    baseline_complaints = table.Column<long>(type: "bigint", nullable: false),
                    limits_set = table.Column<bool>(type: "boolean", nullable: false),
                    messages_per_hour = table.Column<int>(type: "integer", nullable: true),
                    messages_per_day = table.Column<int>(type: "integer", nullable: true),
                    first_send_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_tenant_reputation", x => x.tenant_id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_reputation_counts_hour",
                table: "reputation_counts",
                column: "hour");

            migrationBuilder.CreateIndex(
                name: "ix_tenant_reputation_state",
                table: "tenant_reputation",
                column: "state");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "reputation_counts");

            migrationBuilder.DropTable(
                name: "send_counters");

            migrationBuilder.DropTable(
                name: "tenant_reputation");

            migrationBuilder.DropColumn(
                name: "list_checked",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "paused_by",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "throttled_until",
                table: "send_jobs");
        }
    }
}
