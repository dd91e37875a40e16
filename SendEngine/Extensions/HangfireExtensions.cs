using System.ComponentModel.DataAnnotations;
using Hangfire;
using Hangfire.AspNetCore;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults;

namespace SendEngine.Extensions;

public sealed class HangfireOptions
{
    public const string Section = "Hangfire";

    /// <summary>Basic-auth credential for /hangfire; without both the dashboard is not mapped (404).</summary>
    public string? DashboardUsername { get; set; }
    public string? DashboardPassword { get; set; }

    [Range(1, 100)]
    public int WorkerCount { get; set; } = 4;

    /// <summary>How often due scheduled jobs are moved to the queue (the delay between scheduled_at and the start).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan SchedulePollingInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often idle workers look for enqueued jobs: the wait between POST /api/send-jobs and the job's start (up to
    /// this, half of it on average). Each look is one cheap query per worker.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan QueuePollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A job whose server died is run again after this (sliding: a live server keeps extending it).</summary>
    [Range(typeof(TimeSpan), "00:00:05", "01:00:00")]
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// When a Hangfire lock whose holder died (SIGKILL) is considered stale. Hangfire.PostgreSql's locks are rows, so a
    /// killed process leaves its lock behind; its default of 10 minutes kept a restarted process from scheduling for
    /// that long. Our locks are held for moments (the recurring-job scheduler, the watchdog's run).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "01:00:00")]
    public TimeSpan DistributedLockTimeout { get; set; } = TimeSpan.FromMinutes(1);

    public bool DashboardEnabled => !string.IsNullOrEmpty(DashboardUsername) && !string.IsNullOrEmpty(DashboardPassword);
}

/// <summary>Hangfire on PostgreSQL (schema "hangfire" in Send Engine's database), server in-process.</summary>
public static class HangfireExtensions
{
    public const string MaintenanceQueue = "maintenance";

    public static WebApplicationBuilder AddSendEngineHangfire(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<HangfireOptions>().BindConfiguration(HangfireOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        var o = builder.Configuration.GetSection(HangfireOptions.Section).Get<HangfireOptions>() ?? new HangfireOptions();
        var connectionString = builder.Configuration.GetConnectionString(DataExtensions.ConnectionStringName)!;
        var storageOptions = new PostgreSqlStorageOptions
        {
            SchemaName = "hangfire",
            PrepareSchemaIfNecessary = true,
            // No LISTEN/NOTIFY long polling: when its listener connection drops, enqueued jobs stay stuck until the
            // invisibility timeout (Hangfire.PostgreSql issue #410, seen here as a send job that never started).
            // Polling (Hangfire__QueuePollInterval) costs one cheap query per worker per poll and always recovers.
            EnableLongPolling = false,
            QueuePollInterval = o.QueuePollInterval,
            UseSlidingInvisibilityTimeout = true,
            InvisibilityTimeout = o.InvisibilityTimeout,
            DistributedLockTimeout = o.DistributedLockTimeout,
        };
        // The storage and the job activator are this host's own services. AddHangfire would otherwise hand out
        // JobStorage.Current and JobActivator.Current, process-wide statics that the last host to start overwrites:
        // with two hosts in one process (the tests) a job ran on the other host's disposed container, or against
        // the other host's database, and never started.
        services.AddSingleton<JobStorage>(_ => new PostgreSqlStorage(new NpgsqlConnectionFactory(connectionString, storageOptions), storageOptions));
        services.AddSingleton<JobActivator>(sp => new AspNetCoreJobActivator(sp.GetRequiredService<IServiceScopeFactory>()));
        // The dashboard's actions are POSTs validated against this (see UseHangfireDashboardForOperators).
        services.AddAntiforgery();
        services.AddHangfire(c => c
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings());
        // A send job holds its worker while it delivers, so WorkerCount is how many jobs one process runs at once
        // (later ones wait their turn). The watchdog has a worker of its own, so busy send workers cannot starve it.
        services.AddHangfireServer(s =>
        {
            s.WorkerCount = o.WorkerCount;
            s.SchedulePollingInterval = o.SchedulePollingInterval;
        });
        services.AddHangfireServer(s =>
        {
            s.ServerName = $"{Environment.MachineName}:{Environment.ProcessId}:maintenance";
            s.Queues = [MaintenanceQueue];
            s.WorkerCount = 1;
            s.SchedulePollingInterval = o.SchedulePollingInterval;
        });
        return builder;
    }

    /// <summary>The dashboard at /hangfire behind HTTP basic auth, or nothing when no credential is configured.</summary>
    public static WebApplication UseHangfireDashboardForOperators(this WebApplication app)
    {
        var o = app.Services.GetRequiredService<IOptions<HangfireOptions>>().Value;
        if (!o.DashboardEnabled)
        {
            return app;
        }
        var expected = BasicCredential.Hash(o.DashboardUsername!, o.DashboardPassword!);
        app.UseWhen(ctx => ctx.Request.Path.StartsWithSegments("/hangfire"), branch => branch.Use(async (ctx, next) =>
        {
            if (!BasicCredential.Matches(ctx.Request.Headers.Authorization.ToString(), expected))
            {
                await BasicCredential.ChallengeAsync(ctx, "Send Engine operations");
                return;
            }
            await next(ctx);
        }));
        // Access is decided by the basic-auth gate above; Hangfire's default filter would allow only local requests.
        // A browser resends a basic credential with any request to this origin, a cross-site form POST included, so
        // the dashboard's actions (trigger, requeue, delete) also need the antiforgery token: Hangfire checks it on
        // every POST when IAntiforgery is registered (AddSendEngineHangfire) and puts it in each page it renders.
        app.UseHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], DashboardTitle = "Send Engine jobs", IgnoreAntiforgeryToken = false });
        return app;
    }
}
