using MemberCenter.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.TestSupport;
using Npgsql;

namespace MemberCenter.Tests;

/// <summary>
/// Outside Development Member Center does not migrate on start (Database__ApplyMigrationsOnStartup=false): an operator
/// applies `dotnet ef migrations script` (or its idempotent form). It must run as written and build what the
/// migrations build on start (a raw SQL step without its semicolon breaks the script, not the start).
/// </summary>
public sealed class MigrationScriptTests(PostgresServer postgres)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_migration_script_runs_on_an_empty_database_and_builds_the_schema_the_migrations_build(bool idempotent)
    {
        var ct = TestContext.Current.CancellationToken;
        var scripted = await CreateAsync("mc_script", ct);
        var migrated = await CreateAsync("mc_migrated", ct);
        await using (var db = Context(scripted))
        {
            await TestSql.ExecuteScriptAsync(scripted, db.GetService<IMigrator>().GenerateScript(
                options: idempotent ? MigrationsSqlGenerationOptions.Idempotent : MigrationsSqlGenerationOptions.Default));
        }
        await using (var db = Context(migrated))
        {
            await db.Database.MigrateAsync(ct);
        }

        Assert.Equal(await TestSql.SchemaAsync(migrated), await TestSql.SchemaAsync(scripted));
    }

    private async Task<string> CreateAsync(string prefix, CancellationToken ct) =>
        new NpgsqlConnectionStringBuilder(await postgres.CreateDatabaseAsync(prefix, ct)) { Pooling = false }.ConnectionString;

    /// <summary>As the service builds it (Identity's schema version 3, as DesignTimeDbContextFactory sets).</summary>
    private static MemberCenterDbContext Context(string connectionString)
    {
        var services = new ServiceCollection();
        services.Configure<IdentityOptions>(o => o.Stores.SchemaVersion = IdentitySchemaVersions.Version3);
        return new(new DbContextOptionsBuilder<MemberCenterDbContext>()
            .UseNpgsql(connectionString)
            .UseSnakeCaseNamingConvention()
            .UseApplicationServiceProvider(services.BuildServiceProvider())
            .Options);
    }
}
