using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using NewsletterConsole.Auth;
using NewsletterConsole.Data;
using Newsletter.ServiceDefaults.Data;

namespace NewsletterConsole.Extensions;

/// <summary>
/// The console's database (ConnectionStrings:Console): sessions and the Data Protection key ring, shared by every
/// console instance and kept across restarts.
/// </summary>
public static class DataExtensions
{
    public const string ConnectionStringName = "Console";

    public static WebApplicationBuilder AddConsoleData(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var connectionString = builder.Configuration.GetConnectionString(ConnectionStringName);
        services.AddOptions<DatabaseOptions>().BindConfiguration(DatabaseOptions.Section);
        services.AddOptions<ConnectionCheck>()
            .Configure(c => c.ConnectionString = connectionString)
            .Validate(c => !string.IsNullOrWhiteSpace(c.ConnectionString),
                "ConnectionStrings:Console is not set. ./run.sh creates the console database and sets it; otherwise set ConnectionStrings__Console.")
            .ValidateOnStart();
        services.AddPooledDbContextFactory<ConsoleDbContext>(o => o
            .UseNpgsql(PostgresDefaults.Tuned(connectionString ?? "Host=unset"))
            .UseSnakeCaseNamingConvention());
        // Data Protection's EF repository asks for a scoped context.
        services.AddScoped(sp => sp.GetRequiredService<IDbContextFactory<ConsoleDbContext>>().CreateDbContext());
        // Registered before Data Protection's own hosted service loads the key ring: the table must exist by then.
        services.AddHostedService<ConsoleDatabaseInitializer>();
        // One key ring for every instance: the session cookie, the tickets, antiforgery and the OIDC correlation
        // cookies are readable wherever the next request lands.
        services.AddDataProtection()
            .SetApplicationName("newsletter-console")
            .PersistKeysToDbContext<ConsoleDbContext>();
        services.AddHostedService<SessionTicketCleanup>();
        return builder;
    }

    private sealed class ConnectionCheck
    {
        public string? ConnectionString { get; set; }
    }
}

/// <summary>On start: the console database's migrations, when Database:ApplyMigrationsOnStartup (run.sh, compose, tests).</summary>
internal sealed partial class ConsoleDatabaseInitializer(IDbContextFactory<ConsoleDbContext> contexts, IOptions<DatabaseOptions> options,
    ILogger<ConsoleDatabaseInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.ApplyMigrationsOnStartup)
        {
            return;
        }
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        // EF Core holds a database lock while migrating, so instances starting together migrate once.
        await db.Database.MigrateAsync(cancellationToken);
        LogMigrated(logger);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(LogLevel.Information, "Console database migrations applied")]
    private static partial void LogMigrated(ILogger logger);
}
