using Microsoft.EntityFrameworkCore;
using Newsletter.ServiceDefaults.Data;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Extensions;

public static class DataExtensions
{
    public const string ConnectionStringName = "SendEngine";

    /// <summary>
    /// The key of a second <see cref="NpgsqlDataSource"/>, whose connections plan every execution of their prepared
    /// statements (plan_cache_mode = force_custom_plan): for a statement whose best plan depends on the rows (the
    /// transactional dispatcher's claim: how many are due, and how many of those are leased), where a generic plan made
    /// in one state of the table would be kept in the next.
    /// </summary>
    public const string CustomPlans = "custom-plans";

    /// <summary>
    /// The key of a third <see cref="NpgsqlDataSource"/>, whose connections plan each prepared statement once
    /// (plan_cache_mode = force_generic_plan) and never choose a sequential scan where an index serves
    /// (enable_seqscan = off): for statements that find their rows by arrays of ids in tables which grow fast from empty
    /// (the transactional dispatcher's records, the bulk delivery ledger's marks and records), where an index is
    /// the right plan at any size. Planned at each execution instead, the transactional record spent about as long
    /// planning as executing; a generic plan made while the table was small, without the second setting, scanned all of it.
    /// </summary>
    public const string GenericPlans = "generic-plans";

    public static WebApplicationBuilder AddSendEngineData(this WebApplicationBuilder builder)
    {
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                "ConnectionStrings:SendEngine is not set. ./run.sh starts a local PostgreSQL and sets it; otherwise set ConnectionStrings__SendEngine.");
        }
        builder.Services.AddOptions<DatabaseOptions>().BindConfiguration(DatabaseOptions.Section);

        // The delivery pipeline talks to PostgreSQL directly (COPY, SKIP LOCKED claims, per-message updates).
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(PostgresDefaults.Tuned(connectionString)));
        builder.Services.AddKeyedSingleton(CustomPlans, (_, _) => NpgsqlDataSource.Create(WithCustomPlans(PostgresDefaults.Tuned(connectionString))));
        builder.Services.AddKeyedSingleton(GenericPlans, (_, _) => NpgsqlDataSource.Create(WithGenericPlans(PostgresDefaults.Tuned(connectionString))));
        builder.Services.AddDbContextPool<SendEngineDbContext>((sp, o) =>
        {
            o.UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>());
            o.UseSnakeCaseNamingConvention();
        });
        builder.Services.AddHealthChecks().AddDbContextCheck<SendEngineDbContext>("postgresql");
        // Its table operation_log is in this database; the rows are written and read on the same data source.
        builder.Services.AddOperationLog();
        builder.Services.AddHostedService<DatabaseInitializer>();
        return builder;
    }

    /// <summary>The connection string with plan_cache_mode = force_custom_plan added to its server options.</summary>
    internal static string WithCustomPlans(string connectionString) =>
        PostgresDefaults.WithServerOption(connectionString, "plan_cache_mode=force_custom_plan");

    /// <summary>The connection string with plan_cache_mode = force_generic_plan and enable_seqscan = off added to its server options.</summary>
    internal static string WithGenericPlans(string connectionString) =>
        PostgresDefaults.WithServerOption(PostgresDefaults.WithServerOption(connectionString, "plan_cache_mode=force_generic_plan"), "enable_seqscan=off");
}
