using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class StatelessLinksAndChangeFeed : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "changes_cursor",
                table: "send_jobs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "link_key_id",
                table: "send_jobs",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "links_issued_at",
                table: "send_jobs",
                type: "bigint",
                nullable: true);

            migrationBuilder.AlterColumn<string>(
                name: "unsubscribe_url",
                table: "send_job_recipients",
                type: "text",
                nullable: true,
                oldClrType: typeof(string),
                oldType: "text");

            // Finished jobs no longer need their recipients' working unsubscribe links (each a 60-day credential);
            // running jobs keep theirs until they finish, new snapshots store none.
            migrationBuilder.Sql("""
                UPDATE send_job_recipients r SET unsubscribe_url = NULL
                FROM send_jobs j WHERE j.id = r.job_id AND r.unsubscribe_url IS NOT NULL AND j.status IN ('completed', 'cancelled', 'failed');
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "changes_cursor",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "link_key_id",
                table: "send_jobs");

            migrationBuilder.DropColumn(
                name: "links_issued_at",
                table: "send_jobs");

            migrationBuilder.AlterColumn<string>(
                name: "unsubscribe_url",
                table: "send_job_recipients",
                type: "text",
                nullable: false,
                defaultValue: "",
                oldClrType: typeof(string),
                oldType: "text",
                oldNullable: true);
        }
    }
}
