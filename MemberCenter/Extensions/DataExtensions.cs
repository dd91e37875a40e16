using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Newsletter.ServiceDefaults.Data;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;

namespace MemberCenter.Extensions;

public static class DataExtensions
{
    public const string ConnectionStringName = "MemberCenter";

    public static WebApplicationBuilder AddMemberCenterData(this WebApplicationBuilder builder)
    {
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName);
        builder.Services.AddOptions<DatabaseOptions>().BindConfiguration(DatabaseOptions.Section);
        builder.Services.AddOptions<ConnectionCheck>()
            .Configure(c => c.ConnectionString = connectionString)
            .Validate(c => !string.IsNullOrWhiteSpace(c.ConnectionString),
                "ConnectionStrings:MemberCenter is not set. ./run.sh starts a local PostgreSQL and sets it; otherwise set ConnectionStrings__MemberCenter.")
            .ValidateOnStart();

        // One data source for EF Core and for the few hot paths written as single SQL statements.
        var dataSource = NpgsqlDataSource.Create(PostgresDefaults.Tuned(connectionString ?? "Host=unset"));
        builder.Services.AddSingleton(dataSource);
        builder.Services.AddDbContextPool<MemberCenterDbContext>(o =>
        {
            o.UseNpgsql(dataSource);
            o.UseSnakeCaseNamingConvention();
        });
        builder.Services.AddHealthChecks().AddDbContextCheck<MemberCenterDbContext>("postgresql");
        // Its table operation_log is in this database; the rows are written and read on the same data source.
        builder.Services.AddOperationLog();
        // Registered before the signing key ring so the schema exists when the ring loads keys.
        builder.Services.AddHostedService<DatabaseInitializer>();
        return builder;
    }

    private sealed class ConnectionCheck
    {
        public string? ConnectionString { get; set; }
    }
}
