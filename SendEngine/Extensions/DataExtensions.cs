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
    /// The key of the second <see cref="NpgsqlDataSource"/>, whose connections plan every execution of their prepared
    /// statements (plan_cache_mode = force_custom_plan): for statements that join tables which grow fast from empty (the
    /// transactional dispatcher's claim and records), where a generic plan cached while a table was small kept a
    /// sequential scan of it for the life of the connection.
    /// </summary>
    public const string CustomPlans = "custom-plans";

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
}
