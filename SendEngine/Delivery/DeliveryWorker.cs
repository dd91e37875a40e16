using System.Text.Json;
using System.Threading.Channels;
using System.Threading.RateLimiting;
using Newsletter.Contracts;
using SendEngine.Composition;
using SendEngine.Transports;

namespace SendEngine.Delivery;

/// <summary>
/// One SMTP connection's (or ESP session's) loop: takes recipients read for delivery from the channel in groups, marks
/// each group <c>sending</c> durably through the ledger (the mark is what takes a row: one another runner took first is
/// dropped), the next group while the last quarter of the one before is sent, composes and sends each message, and turns
/// each transport outcome into a recipient status (docs/send-engine.md, "Outcomes"). A dependency failure stops the run
/// for a pause and hands the unattempted rows back; the message in hand always completes and is recorded.
/// </summary>
internal sealed partial class DeliveryWorker(
    DeliveryRun run,
    BulkComposers composers,
    UnsubscribeLinks links,
    ITransport transport,
    ChannelReader<Claimed> reader,
    DeliveryLedger ledger,
    RateLimiter? limiter,
    SendJobOptions jobOptions,
    int groupSize,
    ILogger logger)
{
    /// <summary>Runs until the channel is drained or the run stops; a failure of our own stops the whole run (<see cref="DeliveryRun.Fail"/>).</summary>
    public async Task RunAsync()
    {
        try
        {
            await DeliverAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !run.Stop.IsCancellationRequested)
        {
            // The row in 'sending' must not have its lease renewed forever: the run stops, and if the record of this
            // attempt is lost the row's lease expires and it becomes 'unknown' (at-most-once).
            LogWorkerFailed(logger, run.Job.Id, ex.GetType().Name, ex.Message);
            run.Fail(ex);
        }
    }

    private async Task DeliverAsync()
    {
        var stop = run.Stop.Token;
        await using var session = transport.OpenSession();
        var results = new List<AttemptResult>(groupSize);
        // The connection's window: rows marked 'sending' and not yet attempted, and the mark of the next rows in flight
        // while the last of these are sent. Together with the results not yet recorded they never exceed groupSize rows
        // (each mark takes groupSize minus the rows in hand and carries every result so far), so a crash leaves at most
        // groupSize rows of this connection in 'sending'.
        var inHand = new Queue<Claimed>(groupSize);
        Task<List<Claimed>>? marking = null;
        try
        {
            // Connected while the claimer claims and checks the first batch, rather than after it.
            await session.WarmUpAsync(stop);
            run.Timeline?.Mark("first connection open");
            while (true)
            {
                if (stop.IsCancellationRequested)
                {
                    // Stopping: the rows in hand and those being marked were never attempted (handed back below).
                    break;
                }
                if (marking is null && inHand.Count <= _markAheadAt)
                {
                    // The next rows' mark goes out while the last rows in hand are sent: its commit (an fsync) no longer
                    // stalls the connection. Only rows ready now and within the rate limit.
                    var ahead = new List<Claimed>(groupSize - inHand.Count);
                    TakeReady(ahead, groupSize - inHand.Count);
                    if (ahead.Count > 0)
                    {
                        marking = MarkAsync(results, ahead);
                    }
                }
                if (inHand.Count == 0)
                {
                    if (marking is null)
                    {
                        // Nothing ready: record what is done, then wait for the next row (and the rate limit).
                        var group = await NextGroupAsync(results, stop);
                        if (group is null)
                        {
                            break;
                        }
                        marking = MarkAsync(results, group);
                    }
                    // Taken first: a mark that fails is not awaited again when the worker stops.
                    var pending = marking;
                    marking = null;
                    var marked = await pending;
                    run.Timeline?.Mark("first group marked sending");
                    foreach (var r in marked)
                    {
                        inHand.Enqueue(r);
                    }
                    continue;
                }
                // Out of the window before the attempt: if the transport throws, the row stays 'sending' and expires to
                // 'unknown' (it may have been handed over).
                var next = inHand.Dequeue();
                var (messageId, result) = await SendOneAsync(next, session);
                if (result.Outcome is DeliveryOutcome.Unavailable or DeliveryOutcome.Misconfigured)
                {
                    // Nothing was handed over: not an attempt. The whole job waits for the dependency.
                    await ledger.UnmarkAsync([next.Id]);
                    LogTransportDown(logger, run.Job.Id, result.Outcome.ToString(), result.Detail);
                    run.RequestPause(Describe(result), result.Outcome == DeliveryOutcome.Misconfigured);
                    break;
                }
                var attempt = ToAttempt(next, messageId, result);
                run.Count(attempt.Status);
                results.Add(attempt);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopping; rows read but never marked are still pending.
        }
        finally
        {
            try
            {
                await HandBackAsync(inHand, marking);
            }
            finally
            {
                await ledger.RecordAsync(results);
            }
        }
    }

    // Mark ahead when this many rows are left in hand: a quarter of a group (8 of 32) covers a commit's round trip at
    // the connection's pace, and the marks stay three quarters of a group each. A group of 1 marks when the last is done.
    private readonly int _markAheadAt = groupSize / 4;

    /// <summary>
    /// The next group when none is ready: records what is done (it may be the job's last), waits for a row, then takes
    /// whatever else is ready within the rate limit. Null when the channel is drained.
    /// </summary>
    private async Task<List<Claimed>?> NextGroupAsync(List<AttemptResult> results, CancellationToken stop)
    {
        while (true)
        {
            if (!reader.TryRead(out var first))
            {
                if (results.Count > 0)
                {
                    await ledger.RecordAsync(results);
                    run.IdleRecorded();
                }
                if (!await reader.WaitToReadAsync(stop) || !reader.TryRead(out first))
                {
                    if (reader.Completion.IsCompleted)
                    {
                        return null;
                    }
                    continue;
                }
            }
            if (limiter is not null)
            {
                using var now = limiter.AttemptAcquire(1);
                if (!now.IsAcquired)
                {
                    // Record what is done before waiting for the rate limit, not a whole interval later.
                    await ledger.RecordAsync(results);
                    using var later = await limiter.AcquireAsync(1, stop);
                }
            }
            var group = new List<Claimed>(groupSize) { first };
            TakeReady(group, groupSize - 1);
            return group;
        }
    }

    /// <summary>Adds up to <paramref name="max"/> rows that are in the channel now and within the rate limit now.</summary>
    private void TakeReady(List<Claimed> into, int max)
    {
        for (var taken = 0; taken < max && reader.TryPeek(out _); taken++)
        {
            if (limiter is not null)
            {
                using var lease = limiter.AttemptAcquire(1);
                if (!lease.IsAcquired)
                {
                    return;
                }
            }
            if (reader.TryRead(out var row))
            {
                into.Add(row);
            }
        }
    }

    /// <summary>
    /// Records the results so far (taken from the list now) and marks <paramref name="rows"/> 'sending', committed (with
    /// other workers' requests) before any of them is attempted: the durable record that their attempts started. A row
    /// another runner marked first (or that was suppressed, cancelled or deferred meanwhile) does not come back.
    /// </summary>
    private async Task<List<Claimed>> MarkAsync(List<AttemptResult> results, List<Claimed> rows)
    {
        try
        {
            return await ledger.RecordAndMarkAsync(results, rows);
        }
        finally
        {
            run.Release(rows);
        }
    }

    /// <summary>Rows marked but never attempted go back to pending when the worker stops.</summary>
    private async Task HandBackAsync(Queue<Claimed> inHand, Task<List<Claimed>>? marking)
    {
        var unattempted = inHand.Select(r => r.Id).ToList();
        if (marking is not null)
        {
            try
            {
                unattempted.AddRange((await marking).Select(r => r.Id));
            }
            catch (Exception) when (run.Stop.IsCancellationRequested)
            {
                // The mark's outcome is unknown (the run is failing on it): its rows, if marked, expire to 'unknown'.
            }
        }
        await ledger.UnmarkAsync([.. unattempted]);
    }

    private async Task<(string? MessageId, DeliveryResult Result)> SendOneAsync(Claimed r, ITransportSession session)
    {
        try
        {
            var unsubscribeUrl = r.UnsubscribeUrl ?? links.UrlFor(run.Job.ListId, r.SubscriberId);
            var preferences = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(r.Preferences) ?? [];
            // The composer of the recipient's footer language (its lang preference, else the list's default).
            var message = composers.For(preferences).Compose(new MergeData(r.Email, unsubscribeUrl, preferences), r.Id, r.MessageId);
            // Not cancelled by stop: the transaction in flight completes and is recorded.
            return (message.MessageId, await session.SendAsync(message, CancellationToken.None));
        }
        catch (Exception ex) when (ex is FormatException or MimeKit.ParseException or JsonException)
        {
            return (null, new DeliveryResult(DeliveryOutcome.Rejected, "invalid message: " + ex.Message));
        }
    }

    /// <summary>The recipient status of one transport outcome (docs/send-engine.md, "Outcomes").</summary>
    private AttemptResult ToAttempt(Claimed r, string? messageId, DeliveryResult result)
    {
        var detail = result.Detail.Length > 1000 ? result.Detail[..1000] : result.Detail;
        return result.Outcome switch
        {
            DeliveryOutcome.Sent => new AttemptResult(r.Id, RecipientStatuses.Sent, result.ProviderMessageId ?? messageId!, detail, null),
            DeliveryOutcome.Deferred when r.Attempts + 1 < jobOptions.MaxAttempts =>
                new AttemptResult(r.Id, RecipientStatuses.Pending, null, detail, Backoff(r.Attempts)),
            DeliveryOutcome.Unknown => new AttemptResult(r.Id, RecipientStatuses.Unknown, result.ProviderMessageId ?? messageId, detail, null),
            _ => new AttemptResult(r.Id, RecipientStatuses.Failed, messageId, detail, null),
        };
    }

    private TimeSpan Backoff(int attempts) =>
        TimeSpan.FromTicks(Math.Min(jobOptions.RetryBaseDelay.Ticks * (1L << Math.Min(attempts, 16)), TimeSpan.FromMinutes(30).Ticks));

    private static string Describe(DeliveryResult result) => result.Outcome == DeliveryOutcome.Misconfigured
        ? $"the mail transport refused our configuration ({result.Detail}); fix it, then resume the job"
        : $"the mail transport is unavailable ({result.Detail})";

    [LoggerMessage(LogLevel.Error, "Send job {JobId}: a delivery worker failed ({ErrorType}): {Error}; stopping this runner")]
    private static partial void LogWorkerFailed(ILogger logger, Guid jobId, string errorType, string error);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: transport {Outcome}: {Detail}; pausing the job")]
    private static partial void LogTransportDown(ILogger logger, Guid jobId, string outcome, string detail);
}
