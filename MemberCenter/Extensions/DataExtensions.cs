using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace MemberCenter.Extensions;

public sealed class DatabaseOptions
{
    public const string Section = "Database";

    /// <summary>Apply EF Core migrations on start (run.sh and tests do; production may run them as a deploy step).</summary>
    public bool ApplyMigrationsOnStartup { get; set; }
}

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
        var dataSource = NpgsqlDataSource.Create(Tuned(connectionString ?? "Host=unset"));
        builder.Services.AddSingleton(dataSource);
        builder.Services.AddDbContextPool<MemberCenterDbContext>(o =>
        {
            o.UseNpgsql(dataSource);
            o.UseSnakeCaseNamingConvention();
        });
        builder.Services.AddHealthChecks().AddDbContextCheck<MemberCenterDbContext>("postgresql");
        // Registered before the signing key ring so the schema exists when the ring loads keys.
        builder.Services.AddHostedService<DatabaseInitializer>();
        return builder;
    }

    /// <summary>
    /// Defaults measured in bench/membercenter (they halve PostgreSQL's CPU per request) unless the connection string
    /// sets them: no DISCARD ALL when a pooled connection is reused (the app keeps no session state; its advisory
    /// locks are transaction-scoped), and automatic preparation of the hot statements.
    /// </summary>
    public static string Tuned(string connectionString)
    {
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        if (!csb.ContainsKey("No Reset On Close"))
        {
            csb.NoResetOnClose = true;
        }
        if (!csb.ContainsKey("Max Auto Prepare"))
        {
            csb.MaxAutoPrepare = 64;
        }
        return csb.ConnectionString;
    }

    private sealed class ConnectionCheck
    {
        public string? ConnectionString { get; set; }
    }
}
