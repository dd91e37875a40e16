using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class SenderDomainDkim : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "check_results",
                table: "sender_domains",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "last_checked_at",
                table: "sender_domains",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "verified_at",
                table: "sender_domains",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "sender_domain_keys",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    domain = table.Column<string>(type: "character varying(253)", maxLength: 253, nullable: false),
                    selector = table.Column<string>(type: "character varying(63)", maxLength: 63, nullable: false),
                    public_key = table.Column<string>(type: "character varying(1024)", maxLength: 1024, nullable: false),
                    private_key = table.Column<byte[]>(type: "bytea", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    superseded_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_sender_domain_keys", x => x.id);
                    table.ForeignKey(
                        name: "fk_sender_domain_keys_sender_domains_tenant_id_domain",
                        columns: x => new { x.tenant_id, x.domain },
                        principalTable: "sender_domains",
                        principalColumns: new[] { "tenant_id", "domain" },
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_sender_domain_keys_tenant_id_domain_selector",
                table: "sender_domain_keys",
                columns: new[] { "tenant_id", "domain", "selector" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "sender_domain_keys");

            migrationBuilder.DropColumn(
                name: "check_results",
                table: "sender_domains");

            migrationBuilder.DropColumn(
                name: "last_checked_at",
                table: "sender_domains");

            migrationBuilder.DropColumn(
                name: "verified_at",
                table: "sender_domains");
        }
    }
}
