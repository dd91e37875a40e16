using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class WebhookEndpointPause : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "consecutive_failures",
                table: "webhook_endpoints",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "paused_until",
                table: "webhook_endpoints",
                type: "timestamp with time zone",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "consecutive_failures",
                table: "webhook_endpoints");

            migrationBuilder.DropColumn(
                name: "paused_until",
                table: "webhook_endpoints");
        }
    }
}
