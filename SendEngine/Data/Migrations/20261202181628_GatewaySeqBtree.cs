using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class GatewaySeqBtree : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries",
                column: "seq");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_gateway_entries_seq",
                table: "webhook_gateway_entries",
                column: "seq")
                .Annotation("Npgsql:IndexMethod", "brin")
                .Annotation("Npgsql:StorageParameter:autosummarize", true)
                .Annotation("Npgsql:StorageParameter:pages_per_range", 16);
        }
    }
}
