using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <summary>
    /// The request row's completion (completed_at, set once its last task is final) as a HOT update: no index holds
    /// completed_at any more (the retention sweep finds old requests through created_at, which a completed request's
    /// completed_at never precedes), the index on (tenant_id, created_at) that nothing read is gone, and the pages keep room
    /// for the new row version (fillfactor 70). Before, each completion inserted an entry into every index of the table.
    /// And no foreign key from the tasks to their request: its check looked the request up and locked its row (a WAL
    /// record) for every task inserted, while the tasks are only ever inserted by the statement that inserts their request
    /// and deleted (by retention) in the statement that deletes it.
    /// </summary>
    public partial class TransactionalRequestHotCompletion : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropForeignKey(
                name: "fk_transactional_tasks_transactional_requests_request_id",
                table: "transactional_tasks");

            migrationBuilder.DropIndex(
                name: "ix_transactional_requests_completed_at",
                table: "transactional_requests");

            migrationBuilder.DropIndex(
                name: "ix_transactional_requests_tenant_id_created_at",
                table: "transactional_requests");

            // Future pages only; the requests already stored keep theirs.
            migrationBuilder.AlterTable(
                name: "transactional_requests")
                .Annotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.CreateIndex(
                name: "ix_transactional_requests_created_at",
                table: "transactional_requests",
                column: "created_at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_transactional_requests_created_at",
                table: "transactional_requests");

            migrationBuilder.AlterTable(
                name: "transactional_requests")
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.CreateIndex(
                name: "ix_transactional_requests_completed_at",
                table: "transactional_requests",
                column: "completed_at",
                filter: "completed_at IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "ix_transactional_requests_tenant_id_created_at",
                table: "transactional_requests",
                columns: new[] { "tenant_id", "created_at" });

            migrationBuilder.AddForeignKey(
                name: "fk_transactional_tasks_transactional_requests_request_id",
                table: "transactional_tasks",
                column: "request_id",
                principalTable: "transactional_requests",
                principalColumn: "id",
                onDelete: ReferentialAction.Cascade);
        }
    }
}
