using Hangfire;

namespace SendEngine.Delivery;

/// <summary>
/// A recurring Hangfire job (every minute): runs jobs that should be running but have no runner (a crash between the
/// insert and the Hangfire schedule, a runner whose Hangfire job was lost, a paused job whose scheduled resume was
/// lost). Extra runners are harmless (recipients are claimed with SKIP LOCKED), so this errs on the side of starting
/// one. It also settles the rows of recently cancelled jobs whose runner died.
/// </summary>
public sealed partial class SendJobWatchdog(RecipientStore store, IBackgroundJobClient jobs, ILogger<SendJobWatchdog> logger)
{
    public const string RecurringJobId = "send-job-watchdog";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(60)]
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await store.SettleCancelledAsync(cancellationToken);
        foreach (var id in await store.FindStalledAsync(cancellationToken))
        {
            LogRestarting(logger, id);
            jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        }
    }

    [LoggerMessage(LogLevel.Warning, "Send job {JobId} has no active runner; starting one")]
    private static partial void LogRestarting(ILogger logger, Guid jobId);
}

/// <summary>
/// Registers the watchdog's minutely schedule once Hangfire's storage lets it, retrying: after a crash the lock the
/// dead process held stays until it is stale (<see cref="Extensions.HangfireOptions.DistributedLockTimeout"/>), and a
/// restarted process must come up meanwhile rather than fail at start.
/// </summary>
public sealed partial class SendJobWatchdogRegistration(IRecurringJobManager recurringJobs, TimeProvider clock, ILogger<SendJobWatchdogRegistration> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                recurringJobs.AddOrUpdate<SendJobWatchdog>(SendJobWatchdog.RecurringJobId, Extensions.HangfireExtensions.MaintenanceQueue,
                    w => w.RunAsync(CancellationToken.None), Cron.Minutely());
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogRegistrationFailed(logger, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(5), clock, stoppingToken);
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "Could not register the send-job watchdog's schedule yet ({Error}); retrying in 5 s")]
    private static partial void LogRegistrationFailed(ILogger logger, string error);
}
