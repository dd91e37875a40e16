using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class Retention : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "archived_at",
                table: "send_jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "archived_counts",
                table: "send_jobs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "archived_event_counts",
                table: "send_jobs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "total_sent_archived",
                table: "email_statistics",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            // Expression and retention indexes EF's model cannot express; raw SQL, so they stay out of the snapshot.
            // GET /api/email-addresses/{email}/statistics finds the address's rows by lower(email).
            migrationBuilder.Sql("CREATE INDEX ix_send_job_recipients_lower_email ON send_job_recipients (lower(email::text));");
            // The retention sweep: raw payloads still to clear (30 days of rows), events to delete, delivered reports.
            migrationBuilder.Sql("CREATE INDEX ix_email_events_raw_received_at ON email_events (received_at) WHERE payload <> '{}'::jsonb;");
            migrationBuilder.Sql("CREATE INDEX ix_email_events_received_at ON email_events (received_at);");
            migrationBuilder.Sql("CREATE INDEX ix_member_center_reports_sent ON member_center_reports (completed_at) WHERE outcome = 'sent';");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP INDEX ix_send_job_recipients_lower_email;");
            migrationBuilder.Sql("DROP INDEX ix_email_events_raw_received_at;");
            migrationBuilder.Sql("DROP INDEX ix_email_events_received_at;");
            migrationBuilder.Sql("DROP INDEX ix_member_center_reports_sent;");

            migrationBuilder.DropColumn(
                name: "archived_at",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "archived_counts",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "archived_event_counts",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "total_sent_archived",
                table: "email_statistics");
        }
    }
}
