using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class BounceMailboxes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "bounce_mailbox_status",
                columns: table => new
                {
                    mailbox_key = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: true),
                    last_connected_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    last_checked_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    last_error = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true),
                    last_error_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    processed = table.Column<long>(type: "bigint", nullable: false),
                    ignored = table.Column<long>(type: "bigint", nullable: false),
                    unmatched = table.Column<long>(type: "bigint", nullable: false),
                    unparsable = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_bounce_mailbox_status", x => x.mailbox_key);
                });

            migrationBuilder.CreateTable(
                name: "bounce_mailboxes",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    host = table.Column<string>(type: "character varying(253)", maxLength: 253, nullable: false),
                    port = table.Column<int>(type: "integer", nullable: false),
                    tls = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    username = table.Column<string>(type: "character varying(320)", maxLength: 320, nullable: false),
                    password = table.Column<byte[]>(type: "bytea", nullable: false),
                    folder = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    processed_folder = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    unparsable_folder = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    allow_invalid_certificate = table.Column<bool>(type: "boolean", nullable: false),
                    enabled = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_bounce_mailboxes", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "bounce_messages",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    mailbox_key = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: true),
                    uid_validity = table.Column<long>(type: "bigint", nullable: false),
                    uid = table.Column<long>(type: "bigint", nullable: false),
                    report_message_id = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    subject = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    outcome = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    reason = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true),
                    attempts = table.Column<int>(type: "integer", nullable: false),
                    first_seen_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_bounce_messages", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_bounce_mailboxes_tenant_id",
                table: "bounce_mailboxes",
                column: "tenant_id");

            migrationBuilder.CreateIndex(
                name: "ix_bounce_messages_mailbox_key_id",
                table: "bounce_messages",
                columns: new[] { "mailbox_key", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_bounce_messages_mailbox_key_uid_validity_uid",
                table: "bounce_messages",
                columns: new[] { "mailbox_key", "uid_validity", "uid" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "bounce_mailbox_status");

            migrationBuilder.DropTable(
                name: "bounce_mailboxes");

            migrationBuilder.DropTable(
                name: "bounce_messages");
        }
    }
}
