using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace SendEngine.Data.Migrations
{
    /// <summary>
    /// The transactional hot path's storage (docs/send-engine.md "Transactional mail"): the request's message as text
    /// compressed with lz4 (was jsonb with pglz), and room in the task table's pages for the final update's HOT version.
    /// </summary>
    public partial class TransactionalHotPath : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<string>(
                name: "message",
                table: "transactional_requests",
                type: "text",
                nullable: false,
                oldClrType: typeof(string),
                oldType: "jsonb");

            // lz4 where the server was built with it (the official images and Debian's are); pglz, the default, elsewhere.
            // New values only: rows written before keep their compression, both are read alike.
            migrationBuilder.Sql("""
                DO $$
                BEGIN
                    ALTER TABLE transactional_requests ALTER COLUMN message SET COMPRESSION lz4;
                EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
                    RAISE NOTICE 'lz4 is not available on this server: transactional_requests.message keeps pglz';
                END $$;
                """);

            // Future pages only; the tasks already stored keep theirs.
            migrationBuilder.AlterTable(
                name: "transactional_tasks")
                .Annotation("Npgsql:StorageParameter:fillfactor", 70);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterTable(
                name: "transactional_tasks")
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 70);

            migrationBuilder.Sql("""
                ALTER TABLE transactional_requests ALTER COLUMN message SET COMPRESSION default;
                ALTER TABLE transactional_requests ALTER COLUMN message TYPE jsonb USING message::jsonb;
                """);
        }
    }
}
