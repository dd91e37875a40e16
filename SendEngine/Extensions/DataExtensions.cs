using Microsoft.EntityFrameworkCore;
using Newsletter.ServiceDefaults.Data;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Extensions;

public static class DataExtensions
{
    public const string ConnectionStringName = "SendEngine";

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
}
