using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class DeliveryResultHot : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_is_open_id",
                table: "send_job_recipients");

            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_sent_at",
                table: "send_job_recipients");

            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_subscriber_id",
                table: "send_job_recipients");

            migrationBuilder.AlterTable(
                name: "send_job_recipients")
                .Annotation("Npgsql:StorageParameter:fillfactor", 50)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_id",
                table: "send_job_recipients",
                columns: new[] { "job_id", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_subscriber_id_job_id",
                table: "send_job_recipients",
                columns: new[] { "subscriber_id", "job_id" },
                unique: true);

            // The next pending rows after a job's claim cursor, in id order, through ix_send_job_recipients_job_id_id.
            // No index holds the status any more, so the planner estimates the filter from statistics: on a table not
            // yet analysed (a new deployment's first job) it guessed a row or two, read every row of the job ahead of
            // the cursor in a bitmap scan and sorted them (30-65 ms a claim on a large list). Sorting and bitmap scans
            // are off inside this function only, which leaves the ordered index walk that stops after n rows. It returns
            // what delivery reads of each row, so the caller joins nothing (a join estimated from no statistics was a
            // hash join over a sequential scan of the table).
            migrationBuilder.Sql("""
                CREATE FUNCTION send_job_recipients_ahead(job uuid, after bigint, due timestamptz, n integer)
                RETURNS TABLE (id bigint, subscriber_id uuid, email text, preferences text, unsubscribe_url text, attempts integer, message_id text)
                LANGUAGE sql STABLE
                SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
                AS $$
                    SELECT r.id, r.subscriber_id, r.email::text, r.preferences::text, r.unsubscribe_url::text, r.attempts, r.message_id::text
                    FROM send_job_recipients r
                    WHERE r.job_id = job AND r.id > after AND r.status = 'pending' AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= due)
                    ORDER BY r.id LIMIT n
                $$;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP FUNCTION send_job_recipients_ahead(uuid, bigint, timestamptz, integer);");

            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_job_id_id",
                table: "send_job_recipients");

            migrationBuilder.DropIndex(
                name: "ix_send_job_recipients_subscriber_id_job_id",
                table: "send_job_recipients");

            migrationBuilder.AlterTable(
                name: "send_job_recipients")
                .Annotation("Npgsql:StorageParameter:fillfactor", 70)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 50);

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_is_open_id",
                table: "send_job_recipients",
                columns: new[] { "job_id", "is_open", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_sent_at",
                table: "send_job_recipients",
                columns: new[] { "job_id", "sent_at" },
                filter: "sent_at IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_send_job_recipients_job_id_subscriber_id",
                table: "send_job_recipients",
                columns: new[] { "job_id", "subscriber_id" },
                unique: true);
        }
    }
}
