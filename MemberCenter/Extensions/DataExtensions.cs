using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

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

        builder.Services.AddDbContextPool<MemberCenterDbContext>(o =>
        {
            o.UseNpgsql(connectionString ?? "Host=unset");
            o.UseSnakeCaseNamingConvention();
        });
        builder.Services.AddHealthChecks().AddDbContextCheck<MemberCenterDbContext>("postgresql");
        // Registered before the signing key ring so the schema exists when the ring loads keys.
        builder.Services.AddHostedService<DatabaseInitializer>();
        return builder;
    }

    private sealed class ConnectionCheck
    {
        public string? ConnectionString { get; set; }
    }
}
