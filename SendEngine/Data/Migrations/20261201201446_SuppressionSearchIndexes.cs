using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class SuppressionSearchIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_suppressions_tenant_id_email",
                table: "suppressions",
                columns: new[] { "tenant_id", "email" })
                .Annotation("Relational:Collation", new[] { null, "C" });

            migrationBuilder.CreateIndex(
                name: "ix_suppressions_tenant_id_reason_email",
                table: "suppressions",
                columns: new[] { "tenant_id", "reason", "email" })
                .Annotation("Relational:Collation", new[] { null, null, "C" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_suppressions_tenant_id_email",
                table: "suppressions");

            migrationBuilder.DropIndex(
                name: "ix_suppressions_tenant_id_reason_email",
                table: "suppressions");
        }
    }
}
