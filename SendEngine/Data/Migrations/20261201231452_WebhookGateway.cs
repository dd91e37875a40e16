using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class WebhookGateway : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "effect",
                table: "email_events",
                type: "character varying(500)",
                maxLength: 500,
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "force_apply",
                table: "email_events",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<Guid>(
                name: "gateway_entry_id",
                table: "email_events",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "webhook_gateway_entries",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    seq = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: true),
                    received_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    source = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    method = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    path = table.Column<string>(type: "character varying(2048)", maxLength: 2048, nullable: false),
                    headers = table.Column<string>(type: "jsonb", nullable: false),
                    body = table.Column<string>(type: "text", nullable: false),
                    body_truncated = table.Column<bool>(type: "boolean", nullable: false),
                    verification = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    status_code = table.Column<int>(type: "integer", nullable: false),
                    events = table.Column<int>(type: "integer", nullable: false),
                    event_types = table.Column<string[]>(type: "text[]", nullable: false),
                    error = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_webhook_gateway_entries", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "webhook_gateway_settings",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    ingestion_enabled = table.Column<bool>(type: "boolean", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_webhook_gateway_settings", x => x.tenant_id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_webhook_attempts_tenant_id_id",
                table: "webhook_attempts",
                columns: new[] { "tenant_id", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_email_events_gateway_entry_id",
                table: "email_events",
                column: "gateway_entry_id",
                filter: "gateway_entry_id IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries",
                column: "seq");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_tenant_id_id",
                table: "webhook_gateway_entries",
                columns: new[] { "tenant_id", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "webhook_gateway_entries");

            migrationBuilder.DropTable(
                name: "webhook_gateway_settings");

            migrationBuilder.DropIndex(
                name: "ix_webhook_attempts_tenant_id_id",
                table: "webhook_attempts");

            migrationBuilder.DropIndex(
                name: "ix_email_events_gateway_entry_id",
                table: "email_events");

            migrationBuilder.DropColumn(
                name: "effect",
                table: "email_events");

            migrationBuilder.DropColumn(
                name: "force_apply",
                table: "email_events");

            migrationBuilder.DropColumn(
                name: "gateway_entry_id",
                table: "email_events");
        }
    }
}
