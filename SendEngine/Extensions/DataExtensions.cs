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
    /// The key of a second <see cref="NpgsqlDataSource"/>, whose connections plan each prepared statement once
    /// (plan_cache_mode = force_generic_plan) and read through an index wherever one serves (enable_seqscan = off,
    /// enable_bitmapscan = off): for the statements of the delivery loops, which find their rows by arrays of ids or
    /// take the first due rows in an index's order, in tables that grow fast from empty and may hold a backlog (the
    /// transactional dispatcher's claim and records, the bulk delivery ledger's marks and records). Planned at each
    /// execution instead, the transactional record spent about as long planning as executing and the claim a third of
    /// its time; a generic plan made while a table was small, without the settings, scanned all of it at each record;
    /// and a claim planned with a bitmap scan reads and sorts every due row, which a backlog makes slow at every claim.
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

    /// <summary>
    /// The connection string with plan_cache_mode = force_generic_plan, enable_seqscan = off and enable_bitmapscan = off
    /// added to its server options.
    /// </summary>
    internal static string WithGenericPlans(string connectionString) =>
        new[] { "plan_cache_mode=force_generic_plan", "enable_seqscan=off", "enable_bitmapscan=off" }
            .Aggregate(connectionString, PostgresDefaults.WithServerOption);
}
