using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class GatewayLogCompact : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Entries name their events' id range instead of an index on email_events.gateway_entry_id: fill it in for the
            // entries already kept (the log holds at most WebhookGateway__KeepPerTenant per tenant) while that index exists.
            migrationBuilder.AddColumn<long>(
                name: "first_event_id",
                table: "webhook_gateway_entries",
                type: "bigint",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "last_event_id",
                table: "webhook_gateway_entries",
                type: "bigint",
                nullable: true);

            migrationBuilder.Sql("""
                UPDATE webhook_gateway_entries e SET first_event_id = x.lo, last_event_id = x.hi
                FROM (SELECT gateway_entry_id, min(id) AS lo, max(id) AS hi FROM email_events WHERE gateway_entry_id IS NOT NULL GROUP BY 1) x
                WHERE x.gateway_entry_id = e.id;
                """);

            migrationBuilder.DropIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries");

            migrationBuilder.DropIndex(
                name: "ix_email_events_gateway_entry_id",
                table: "email_events");

            // Headers: jsonb object → "Name: value" lines.
            migrationBuilder.Sql("ALTER TABLE webhook_gateway_entries ALTER COLUMN headers TYPE text USING headers::text;");
            migrationBuilder.Sql("""
                UPDATE webhook_gateway_entries SET headers = coalesce(
                    (SELECT string_agg(key || ': ' || replace(value, E'\n', ' '), E'\n') FROM jsonb_each_text(headers::jsonb)), '')
                WHERE headers LIKE '{%';
                """);

            migrationBuilder.AlterColumn<string>(
                name: "body",
                table: "webhook_gateway_entries",
                type: "text",
                nullable: true,
                oldClrType: typeof(string),
                oldType: "text");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries",
                column: "seq")
                .Annotation("Npgsql:IndexMethod", "brin")
                .Annotation("Npgsql:StorageParameter:autosummarize", true)
                .Annotation("Npgsql:StorageParameter:pages_per_range", 16);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries");

            migrationBuilder.DropColumn(
                name: "first_event_id",
                table: "webhook_gateway_entries");

            migrationBuilder.DropColumn(
                name: "last_event_id",
                table: "webhook_gateway_entries");

            migrationBuilder.Sql("""
                ALTER TABLE webhook_gateway_entries ADD COLUMN headers_json jsonb;
                UPDATE webhook_gateway_entries SET headers_json = (
                    SELECT coalesce(jsonb_object_agg(split_part(l, ': ', 1), substr(l, length(split_part(l, ': ', 1)) + 3)), '{}'::jsonb)
                    FROM regexp_split_to_table(headers, E'\n') AS l WHERE l <> '');
                ALTER TABLE webhook_gateway_entries DROP COLUMN headers;
                ALTER TABLE webhook_gateway_entries RENAME COLUMN headers_json TO headers;
                ALTER TABLE webhook_gateway_entries ALTER COLUMN headers SET NOT NULL;
                """);

            migrationBuilder.AlterColumn<string>(
                name: "body",
                table: "webhook_gateway_entries",
                type: "text",
                nullable: false,
                defaultValue: "",
                oldClrType: typeof(string),
                oldType: "text",
                oldNullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries",
                column: "seq");

            migrationBuilder.CreateIndex(
                name: "ix_email_events_gateway_entry_id",
                table: "email_events",
                column: "gateway_entry_id",
                filter: "gateway_entry_id IS NOT NULL");
        }
    }
}
