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
/// dropped), composes and sends each message, and turns each transport outcome into a
/// recipient status (docs/send-engine.md, "Outcomes"). A dependency failure stops the run for a pause and hands the
/// group's unattempted rows back; the message in hand always completes and is recorded.
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
        var candidates = new List<Claimed>(groupSize);
        try
        {
            // Connected while the claimer claims and checks the first batch, rather than after it.
            await session.WarmUpAsync(stop);
            run.Timeline?.Mark("first connection open");
            while (true)
            {
                // The next group: one recipient (waiting for it after recording what is done), then whatever else is
                // ready right now, as long as the rate limit allows sending it now too.
                candidates.Clear();
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
                            break;
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
                candidates.Add(first);
                while (candidates.Count < groupSize && reader.TryPeek(out _))
                {
                    if (limiter is not null)
                    {
                        using var lease = limiter.AttemptAcquire(1);
                        if (!lease.IsAcquired)
                        {
                            break;
                        }
                    }
                    if (reader.TryRead(out var more))
                    {
                        candidates.Add(more);
                    }
                }

                // The previous group's results and this group's 'sending' marks, committed (with other workers' requests)
                // before any of the group is attempted: the durable record that their attempts started. A row another
                // runner marked first (or that was suppressed, cancelled or deferred meanwhile) does not come back.
                List<Claimed> marked;
                try
                {
                    marked = await ledger.RecordAndMarkAsync(results, candidates);
                }
                finally
                {
                    run.Release(candidates);
                }
                run.Timeline?.Mark("first group marked sending");
                for (var i = 0; i < marked.Count; i++)
                {
                    if (stop.IsCancellationRequested)
                    {
                        // Stopping: the rest of the group was never attempted and goes back to pending.
                        await ledger.UnmarkAsync(marked.Skip(i).Select(r => r.Id).ToArray());
                        break;
                    }
                    var r = marked[i];
                    var (messageId, result) = await SendOneAsync(r, session);
                    if (result.Outcome is DeliveryOutcome.Unavailable or DeliveryOutcome.Misconfigured)
                    {
                        // Nothing was handed over: not an attempt. The whole job waits for the dependency.
                        await ledger.UnmarkAsync(marked.Skip(i).Select(x => x.Id).ToArray());
                        LogTransportDown(logger, run.Job.Id, result.Outcome.ToString(), result.Detail);
                        run.RequestPause(Describe(result), result.Outcome == DeliveryOutcome.Misconfigured);
                        break;
                    }
                    var attempt = ToAttempt(r, messageId, result);
                    run.Count(attempt.Status);
                    results.Add(attempt);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopping; rows read but never marked are still pending.
        }
        finally
        {
            await ledger.RecordAsync(results);
        }
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
