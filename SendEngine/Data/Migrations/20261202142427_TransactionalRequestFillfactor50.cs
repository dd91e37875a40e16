using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <summary>
    /// transactional_requests pages keep room for the completion's new version of every row on them (fillfactor 50): a
    /// row is about 1 KB, and at 70 a third of the completions found no room on the page and were non-HOT updates.
    /// Future pages only; the requests already stored keep theirs.
    /// </summary>
    public partial class TransactionalRequestFillfactor50 : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterTable(
                name: "transactional_requests")
                .Annotation("Npgsql:StorageParameter:fillfactor", 50)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 70);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterTable(
                name: "transactional_requests")
                .Annotation("Npgsql:StorageParameter:fillfactor", 70)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 50);
        }
    }
}
