using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <inheritdoc />
    public partial class TransactionalDeliveries : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "transactional_deliveries",
                columns: table => new
                {
                    task_id = table.Column<Guid>(type: "uuid", nullable: false),
                    due_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    lease_until = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    attempts = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_transactional_deliveries", x => x.task_id);
                })
                .Annotation("Npgsql:StorageParameter:fillfactor", 50);

            migrationBuilder.CreateIndex(
                name: "ix_transactional_deliveries_due_at",
                table: "transactional_deliveries",
                column: "due_at");

            // Open tasks move to the queue with their due time and attempts; one in sending keeps its lease (its dispatcher
            // may still be sending it, or it dies and the lease's end makes the task unknown); a legacy claimed one was never
            // attempted and is queued again.
            migrationBuilder.Sql("""
                INSERT INTO transactional_deliveries (task_id, due_at, lease_until, attempts)
                SELECT id, due_at, CASE WHEN status = 'sending' THEN coalesce(lease_until, now()) END, attempts
                FROM transactional_tasks WHERE status IN ('queued', 'scheduled', 'claimed', 'sending');
                UPDATE transactional_tasks SET status = 'queued' WHERE status = 'claimed';
                """);

            migrationBuilder.DropIndex(
                name: "ix_transactional_tasks_due",
                table: "transactional_tasks");

            migrationBuilder.DropIndex(
                name: "ix_transactional_tasks_lease",
                table: "transactional_tasks");

            migrationBuilder.DropColumn(
                name: "due_at",
                table: "transactional_tasks");

            migrationBuilder.DropColumn(
                name: "lease_until",
                table: "transactional_tasks");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "due_at",
                table: "transactional_tasks",
                type: "timestamp with time zone",
                nullable: false,
                defaultValue: new DateTimeOffset(new DateTime(1, 1, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)));

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "lease_until",
                table: "transactional_tasks",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_transactional_tasks_due",
                table: "transactional_tasks",
                column: "due_at",
                filter: "status IN ('queued', 'scheduled')");

            migrationBuilder.CreateIndex(
                name: "ix_transactional_tasks_lease",
                table: "transactional_tasks",
                column: "lease_until",
                filter: "status IN ('claimed', 'sending')");

            // An open task's due time and lease back on its row; a leased one is sending there.
            migrationBuilder.Sql("""
                UPDATE transactional_tasks t SET due_at = d.due_at, lease_until = d.lease_until,
                    status = CASE WHEN d.lease_until IS NOT NULL THEN 'sending' ELSE t.status END
                FROM transactional_deliveries d WHERE d.task_id = t.id;
                UPDATE transactional_tasks SET due_at = created_at WHERE due_at = '-infinity' OR due_at < '0002-01-01';
                """);

            migrationBuilder.DropTable(
                name: "transactional_deliveries");
        }
    }
}
