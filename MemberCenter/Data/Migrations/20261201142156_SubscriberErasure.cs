using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace MemberCenter.Data.Migrations
{
    /// <inheritdoc />
    public partial class SubscriberErasure : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<byte[]>(
                name: "subject_hash",
                table: "consent_records",
                type: "bytea",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "erased_addresses",
                columns: table => new
                {
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    address_hash = table.Column<byte[]>(type: "bytea", nullable: false),
                    erased_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_erased_addresses", x => new { x.tenant_id, x.address_hash });
                    table.ForeignKey(
                        name: "fk_erased_addresses_tenants_tenant_id",
                        column: x => x.tenant_id,
                        principalTable: "tenants",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "send_engine_requests",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    tenant_id = table.Column<Guid>(type: "uuid", nullable: false),
                    kind = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    email = table.Column<string>(type: "character varying(320)", maxLength: 320, nullable: true),
                    address_hash = table.Column<byte[]>(type: "bytea", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    attempts = table.Column<int>(type: "integer", nullable: false),
                    next_attempt_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    completed_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    outcome = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    last_error = table.Column<string>(type: "character varying(1000)", maxLength: 1000, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_send_engine_requests", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_consent_records_tenant_id_subject_hash",
                table: "consent_records",
                columns: new[] { "tenant_id", "subject_hash" },
                filter: "subject_hash IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_send_engine_requests_due",
                table: "send_engine_requests",
                column: "next_attempt_at",
                filter: "completed_at IS NULL");

            migrationBuilder.CreateIndex(
                name: "ix_send_engine_requests_open",
                table: "send_engine_requests",
                columns: new[] { "tenant_id", "address_hash", "id" },
                filter: "completed_at IS NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "erased_addresses");

            migrationBuilder.DropTable(
                name: "send_engine_requests");

            migrationBuilder.DropIndex(
                name: "ix_consent_records_tenant_id_subject_hash",
                table: "consent_records");

            migrationBuilder.DropColumn(
                name: "subject_hash",
                table: "consent_records");
        }
    }
}
