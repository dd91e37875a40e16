using System.Threading.Channels;
using Newsletter.ServiceDefaults.Privacy;
using Npgsql;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Suppressions;

namespace SendEngine.Delivery;

/// <summary>
/// The producer side of a delivery run: reads batches of due recipients (<see cref="RecipientStore.ReadDueAsync"/>: no
/// write, the job's claim cursor keeps runners on separate ranges), recovers the rows of runners that died, drops the
/// addresses that must not be mailed now (the tenant's suppressions, unsubscribes and complaints still being reported to
/// Member Center, and the subscriptions Member Center's change feed says stopped being sendable since the snapshot) and
/// hands the rest to the workers' channel, where they stay pending until a worker's <c>sending</c> mark takes them. If
/// Member Center cannot answer, the batch is left pending and the run stops for a pause.
/// <c>senderDomain</c> is the job's verified from domain, for its warm-up (null: none).
/// </summary>
internal sealed partial class RecipientClaimer(
    RecipientStore store,
    NpgsqlDataSource db,
    MemberCenterClient memberCenter,
    AddressHasher hasher,
    SendJobOptions options,
    Features.Reputation.SendingLimits limits,
    string? senderDomain,
    TimeProvider clock,
    ILogger logger)
{
    // The change feed read so far (from the job's changes_cursor): subscriptions that stopped being sendable since the
    // snapshot began. Only grows, and only by the list's unsubscribes during the job.
    private readonly HashSet<Guid> _gone = [];
    private string? _changesCursor;

    /// <param name="nextPage">Waits for the snapshot (taken in this process) to commit another page; null when none is being taken here.</param>
    public async Task RunAsync(DeliveryRun run, ChannelWriter<Claimed> writer, Func<TimeSpan, CancellationToken, Task>? nextPage)
    {
        var ct = run.Stop.Token;
        var job = run.Job;
        await using var conn = await db.OpenConnectionAsync(ct);
        var lastRecovery = DateTimeOffset.MinValue;
        // The job's throttled_until as this run last wrote it; null: not throttled. Unknown at first (MinValue, a value
        // no claim returns): a throttled_until left by an earlier run is cleared by this run's first claim.
        DateTimeOffset? throttledUntil = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            var now = clock.GetUtcNow();
            // Leases only expire when a runner died, so looking for them every half lease is enough.
            if (now - lastRecovery >= options.Lease / 2)
            {
                // Where the job's open rows start now (no index holds the status): this walk, the sweep and the lease
                // renewal start there instead of at the job's first row.
                if (await RecipientStore.FirstOpenWorkAsync(conn, job.Id, run.OpenFrom, ct) is { } open)
                {
                    run.OpenFrom = open;
                }
                await store.RecoverExpiredAsync(conn, job.Id, run.OpenFrom, ct);
                lastRecovery = now;
            }
            var (batch, limitedUntil) = await limits.ClaimAsync(conn, job, senderDomain, now, options.BatchSize, run.Held(), run.Reservations, run.OpenFrom, ct);
            if (limitedUntil is { } until)
            {
                // The tenant's sending limit is reached: the job stays sending and waits for the next window (the
                // housekeeping stops the run meanwhile if the job is paused or cancelled).
                if (throttledUntil != until)
                {
                    await RecipientStore.SetThrottledAsync(conn, job.Id, until, ct);
                    LogThrottled(logger, job.Id, until);
                    throttledUntil = until;
                }
                await Task.Delay(until - now, clock, ct);
                continue;
            }
            if (throttledUntil is not null && batch.Count > 0)
            {
                await RecipientStore.SetThrottledAsync(conn, job.Id, null, ct);
                throttledUntil = null;
            }
            if (batch.Count == 0)
            {
                // Nothing claimable: done, or rows held by workers (ours or another runner's), waiting for a retry, or
                // not yet copied by the snapshot. Look again at the next snapshot page, when one of our workers has
                // recorded its last results (the job's end), or after the poll interval (another runner's rows, retries).
                var recorded = run.NextIdleRecord;
                if (await RecipientStore.FirstOpenWorkAsync(conn, job.Id, run.OpenFrom, ct) is not { } firstOpen)
                {
                    return;
                }
                run.OpenFrom = firstOpen;
                await Task.WhenAny(recorded, nextPage?.Invoke(options.PollInterval, ct) ?? Task.Delay(options.PollInterval, clock, ct));
                ct.ThrowIfCancellationRequested();
                continue;
            }
            run.Timeline?.Mark("first batch claimed");
            var sendable = await FilterAsync(conn, run, batch, ct);
            run.Timeline?.Mark("first batch checked");
            if (sendable is null)
            {
                // Left pending for the pause: never marked by this run.
                await run.Reservations.ReturnAsync(conn, batch.Select(r => r.Id), ct);
                return;
            }
            if (sendable.Count < batch.Count)
            {
                // Skipped rows are never marked: the sending limit counts only the rows marked.
                await run.Reservations.ReturnAsync(conn, batch.Except(sendable).Select(r => r.Id), ct);
            }
            run.Hold(sendable.Select(r => r.Id));
            foreach (var r in sendable)
            {
                await writer.WriteAsync(r, ct);
            }
        }
    }

    /// <summary>Marks suppressed or no-longer-sendable rows and returns the rest; null when the re-check failed (the run is pausing).</summary>
    private async Task<List<Claimed>?> FilterAsync(NpgsqlConnection conn, DeliveryRun run, List<Claimed> batch, CancellationToken ct)
    {
        var job = run.Job;
        var skipped = new Dictionary<long, string>();
        var keys = batch.Select(r => Suppression.Normalize(r.Email)).Distinct().ToArray();
        // Reports Member Center has not acknowledged yet (down, or refusing them): its answers cannot know of them. Read
        // before Member Center is asked: a report acknowledged after this read is known to the answer below.
        var unreported = await PendingReports.FindAsync(conn, job.TenantId, job.ListId, keys, ct);
        // Member Center's answer is on its way while the tenant's suppressions (which only grow) are read.
        var goneTask = NotSendableAsync(job, batch, ct);
        Dictionary<string, string> suppressed;
        try
        {
            suppressed = await SuppressionStore.FindAsync(conn, hasher, job.TenantId, keys, ct);
        }
        catch
        {
            _ = goneTask.ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
            throw;
        }
        foreach (var r in batch)
        {
            var key = Suppression.Normalize(r.Email);
            if (suppressed.TryGetValue(key, out var reason))
            {
                skipped[r.Id] = "suppressed: " + reason;
            }
            else if (unreported.TryGetValue(key, out var reported))
            {
                skipped[r.Id] = $"not sendable: {reported} received, not yet acknowledged by Member Center";
            }
        }

        try
        {
            var gone = await goneTask;
            foreach (var r in batch)
            {
                if (!skipped.ContainsKey(r.Id) && gone(r))
                {
                    skipped[r.Id] = "not sendable: unsubscribed or undeliverable since the snapshot";
                }
            }
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, ct))
        {
            // Without the re-check we might mail someone who just left: the batch stays pending (nothing was written),
            // and the job waits for Member Center.
            LogRecheckFailed(logger, job.Id, ex.Message);
            run.RequestPause("Member Center is unavailable for the unsubscribe re-check: " + ex.Message, MemberCenterClient.NeedsOperator(ex));
            return null;
        }
        if (skipped.Count > 0)
        {
            await store.SkipAsync(conn, skipped, ct);
        }
        return batch.Where(r => !skipped.ContainsKey(r.Id)).ToList();
    }

    /// <summary>
    /// Which of the batch stopped being sendable since the snapshot. Reads the change feed on from where this run left
    /// it (one small request when nothing changed); a job snapshotted before the feed existed asks about the batch's
    /// addresses instead.
    /// </summary>
    private async Task<Func<Claimed, bool>> NotSendableAsync(DeliveryJob job, List<Claimed> batch, CancellationToken ct)
    {
        if (job.ChangesCursor is null)
        {
            var notSendable = await memberCenter.GetNotSendableAsync(job.TenantId, job.ListId, batch.Select(r => r.Email).ToList(), ct);
            var emails = notSendable.Select(Suppression.Normalize).ToHashSet(StringComparer.Ordinal);
            return r => emails.Contains(Suppression.Normalize(r.Email));
        }
        _changesCursor ??= job.ChangesCursor;
        while (true)
        {
            var page = await memberCenter.GetChangesAsync(job.TenantId, job.ListId, _changesCursor, ct);
            foreach (var change in page.Items)
            {
                _gone.Add(Guid.Parse(change.SubscriberId));
            }
            var advanced = page.NextCursor != _changesCursor;
            _changesCursor = page.NextCursor;
            if (page.Items.Count == 0 || !advanced)
            {
                return r => _gone.Contains(r.SubscriberId);
            }
        }
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: the tenant's sending limit is reached; throttled until {Until}")]
    private static partial void LogThrottled(ILogger logger, Guid jobId, DateTimeOffset until);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: Member Center re-check failed, batch left pending: {Error}")]
    private static partial void LogRecheckFailed(ILogger logger, Guid jobId, string error);
}
