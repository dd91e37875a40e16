using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class OperatorResolutionAndSentIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "resolution_note",
                table: "send_job_recipients",
                type: "character varying(500)",
                maxLength: 500,
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "resolved_at",
                table: "send_job_recipients",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "resolved_by",
                table: "send_job_recipients",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_sent_at",
                table: "send_job_recipients",
                columns: new[] { "job_id", "sent_at" },
                filter: "sent_at IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_sent_at",
                table: "send_job_recipients");

            migrationBuilder.DropColumn(
                name: "resolution_note",
                table: "send_job_recipients");

            migrationBuilder.DropColumn(
                name: "resolved_at",
                table: "send_job_recipients");

            migrationBuilder.DropColumn(
                name: "resolved_by",
                table: "send_job_recipients");
        }
    }
}
