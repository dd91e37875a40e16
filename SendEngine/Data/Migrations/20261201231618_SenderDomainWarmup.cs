using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class SenderDomainWarmup : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropPrimaryKey(
                name: "pk_send_counters",
                table: "send_counters");

            migrationBuilder.AddColumn<string>(
                name: "domain",
                table: "send_counters",
                type: "character varying(253)",
                maxLength: 253,
                nullable: false,
                defaultValue: "");

            migrationBuilder.AddPrimaryKey(
                name: "pk_send_counters",
                table: "send_counters",
                columns: new[] { "tenant_id", "domain", "window_start" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // The domains' shares would collide with the tenants' totals under the old key.
            migrationBuilder.Sql("DELETE FROM send_counters WHERE domain <> ''");

            migrationBuilder.DropPrimaryKey(
                name: "pk_send_counters",
                table: "send_counters");

            migrationBuilder.DropColumn(
                name: "domain",
                table: "send_counters");

            migrationBuilder.AddPrimaryKey(
                name: "pk_send_counters",
                table: "send_counters",
                columns: new[] { "tenant_id", "window_start" });
        }
    }
}
