using Newsletter.ServiceDefaults.Data;
using MemberCenter.Extensions;
using MemberCenter.Features.Admin;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace MemberCenter.Data;

/// <summary>On start: migrations (when configured), then the configured platform clients and the demo tenant.</summary>
internal sealed partial class DatabaseInitializer(IServiceScopeFactory scopes, IOptions<DatabaseOptions> options, ILogger<DatabaseInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        if (options.Value.ApplyMigrationsOnStartup)
        {
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            // EF Core holds a database lock while migrating, so replicas starting together migrate once.
            await db.Database.MigrateAsync(cancellationToken);
            LogMigrated(logger);
        }
        await scope.ServiceProvider.GetRequiredService<PlatformSeeder>().SeedAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(LogLevel.Information, "Database migrations applied")]
    private static partial void LogMigrated(ILogger logger);
}
