using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class EmailEvents : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "email_events",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    idempotency_key = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    format = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    event_type = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    raw_event_type = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    message_id = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    smtp_message_id = table.Column<string>(type: "character varying(998)", maxLength: 998, nullable: true),
                    email = table.Column<string>(type: "character varying(320)", maxLength: 320, nullable: false),
                    occurred_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    link = table.Column<string>(type: "character varying(4096)", maxLength: 4096, nullable: true),
                    reason = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true),
                    bounce_type = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    user_agent = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true),
                    ip_address = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    payload = table.Column<string>(type: "jsonb", nullable: false),
                    received_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: true),
                    job_id = table.Column<Guid>(type: "uuid", nullable: true),
                    recipient_id = table.Column<long>(type: "bigint", nullable: true),
                    processed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    outcome = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: true),
                    attempts = table.Column<int>(type: "integer", nullable: false),
                    next_attempt_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    last_error = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_email_events", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "email_statistics",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    email = table.Column<string>(type: "character varying(320)", maxLength: 320, nullable: false),
                    total_delivered = table.Column<int>(type: "integer", nullable: false),
                    total_opened = table.Column<int>(type: "integer", nullable: false),
                    total_clicked = table.Column<int>(type: "integer", nullable: false),
                    total_bounced = table.Column<int>(type: "integer", nullable: false),
                    total_soft_bounced = table.Column<int>(type: "integer", nullable: false),
                    total_complaints = table.Column<int>(type: "integer", nullable: false),
                    total_unsubscribes = table.Column<int>(type: "integer", nullable: false),
                    last_activity = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_email_statistics", x => new { x.tenant_id, x.email });
                });

            migrationBuilder.CreateIndex(
                name: "ix_email_events_idempotency_key",
                table: "email_events",
                column: "idempotency_key",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_email_events_job_id_event_type",
                table: "email_events",
                columns: new[] { "job_id", "event_type" },
                filter: "job_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_email_events_job_id_id",
                table: "email_events",
                columns: new[] { "job_id", "id" },
                filter: "job_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_email_events_tenant_id_email_occurred_at",
                table: "email_events",
                columns: new[] { "tenant_id", "email", "occurred_at" },
                filter: "tenant_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_email_events_unprocessed",
                table: "email_events",
                column: "id",
                filter: "processed_at IS NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "email_events");

            migrationBuilder.DropTable(
                name: "email_statistics");
        }
    }
}
