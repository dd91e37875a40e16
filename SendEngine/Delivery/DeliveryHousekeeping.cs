using Newsletter.Contracts;
using Npgsql;
using SendEngine.Features.Suppressions;

namespace SendEngine.Delivery;

/// <summary>
/// Beside a delivery run: renews the runner's leases (the job's runner lease and its rows in an attempt), stops the run when the job leaves <c>sending</c> (cancelled,
/// paused by another runner), ends the job's outage once mail goes out, logs progress and turns refused mailboxes into
/// suppressions every 10 s.
/// </summary>
internal sealed partial class DeliveryHousekeeping(RecipientStore store, NpgsqlDataSource db, SendJobOptions options, TimeProvider clock, ILogger logger)
{
    public async Task RunAsync(DeliveryRun run)
    {
        var jobId = run.Job.Id;
        try
        {
            // The job's runner lease from the start: until a row is marked, nothing else shows the watchdog this runner.
            await store.RenewLeasesAsync(jobId, run.RunnerId, options.Lease, 0, run.Stop.Token);
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException)
        {
            // Renewed again within a third of the lease; a stopping run needs none.
        }
        var lastRenew = clock.GetUtcNow();
        var lastLog = lastRenew;
        var outageEnded = false;
        while (!run.Stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.PollInterval, clock, run.Stop.Token);
                var now = clock.GetUtcNow();
                var status = await store.JobStatusAsync(jobId, run.Stop.Token);
                if (status != SendJobStatuses.Sending)
                {
                    LogStopping(logger, jobId, status ?? "deleted");
                    await run.Stop.CancelAsync();
                    return;
                }
                if (!outageEnded && run.Sent > 0)
                {
                    await store.EndOutageAsync(jobId, run.Stop.Token);
                    outageEnded = true;
                }
                if (now - lastRenew >= options.Lease / 3)
                {
                    await store.RenewLeasesAsync(jobId, run.RunnerId, options.Lease, run.OpenFrom, run.Stop.Token);
                    lastRenew = now;
                }
                if (now - lastLog >= TimeSpan.FromSeconds(10))
                {
                    LogProgress(logger, jobId, run.Sent, run.Failed, run.Unknown);
                    // The rows below the first open one are final: each is checked once, not the whole job every 10 s.
                    var upTo = run.OpenFrom;
                    if (upTo > run.RefusedCheckedTo)
                    {
                        await AddRefusedMailboxesAsync(db, jobId, clock, logger, run.RefusedCheckedTo, upTo, run.Stop.Token);
                        run.RefusedCheckedTo = upTo;
                    }
                    lastLog = now;
                }
            }
            catch (OperationCanceledException) when (run.Stop.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException ex)
            {
                LogHousekeepingFailed(logger, jobId, ex.Message);
            }
        }
    }

    /// <summary>Mailboxes the receiving server refused (5.1.1 and kin) become suppressions; every 10 s (the rows closed
    /// since) and at the run's end (the rest).</summary>
    public static async Task AddRefusedMailboxesAsync(NpgsqlDataSource db, Guid jobId, TimeProvider clock, ILogger logger, long from, long upTo,
        CancellationToken ct)
    {
        var added = await SuppressionStore.AddRefusedMailboxesAsync(db, jobId, clock.GetUtcNow(), from, upTo, ct);
        if (added > 0)
        {
            LogHardBounces(logger, jobId, added);
        }
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Count} addresses refused as unknown mailboxes added to the tenant's suppressions")]
    private static partial void LogHardBounces(ILogger logger, Guid jobId, int count);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Sent} sent, {Failed} failed, {Unknown} unknown by this runner so far")]
    private static partial void LogProgress(ILogger logger, Guid jobId, int sent, int failed, int unknown);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: status is {Status}, stopping")]
    private static partial void LogStopping(ILogger logger, Guid jobId, string status);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: housekeeping query failed: {Error}")]
    private static partial void LogHousekeepingFailed(ILogger logger, Guid jobId, string error);
}
