using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Tests;

/// <summary>
/// Outside Development the services do not migrate on start (Database__ApplyMigrationsOnStartup=false): an operator
/// applies `dotnet ef migrations script` (or its idempotent form) to the database. That script must run as written and
/// build what the migrations build on start. A raw SQL step without its semicolon ran on start (each step is a command
/// of its own) but broke the script at the statement after it.
/// </summary>
public sealed class MigrationScriptTests(StackFixture stack)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_migration_script_runs_on_an_empty_database_and_builds_the_schema_the_migrations_build(bool idempotent)
    {
        var ct = TestContext.Current.CancellationToken;
        var empty = new NpgsqlConnectionStringBuilder(await stack.Postgres.CreateDatabaseAsync("se_script", ct)) { Pooling = false }.ConnectionString;
        string script;
        await using (var db = new SendEngineDbContext(new DbContextOptionsBuilder<SendEngineDbContext>().UseNpgsql(empty).UseSnakeCaseNamingConvention().Options))
        {
            script = db.GetService<IMigrator>().GenerateScript(options: idempotent ? MigrationsSqlGenerationOptions.Idempotent : MigrationsSqlGenerationOptions.Default);
        }

        await TestSql.ExecuteScriptAsync(empty, script);

        Assert.Equal(await TestSql.SchemaAsync(await stack.CreateSendEngineDatabaseAsync()), await TestSql.SchemaAsync(empty));
    }
}
