using System.Text.Json;
using System.Threading.Channels;
using System.Threading.RateLimiting;
using Hangfire;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Mail;
using Npgsql;
using NpgsqlTypes;
using SendEngine.Composition;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Suppressions;
using SendEngine.Transports;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// The Hangfire job that runs a send job: snapshot, then delivery. Delivery claims batches of recipients with
/// FOR UPDATE SKIP LOCKED and a lease, filters suppressed and no-longer-subscribed addresses, and feeds a bounded
/// channel read by <see cref="DeliveryOptions.Concurrency"/> workers, each with its own reused transport session; their
/// database writes share one connection (<see cref="DeliveryLedger"/>). Every recipient is marked <c>sending</c>
/// (durably) right before its SMTP transaction and <c>sent</c>/<c>failed</c> right after, so a crash leaves at most
/// one ambiguous row per worker (with the default group size), which is recorded as
/// failed rather than mailed twice (at-most-once; see docs/send-engine.md). Several runners, in one process or many,
/// can work on the same job.
/// </summary>
public sealed partial class SendJobRunner(
    NpgsqlDataSource db,
    RecipientSnapshot snapshot,
    MemberCenterClient memberCenter,
    TransportResolver transports,
    IBackgroundJobClient jobs,
    IOptions<SendJobOptions> jobOptions,
    IOptions<DeliveryOptions> deliveryOptions,
    IOptions<SmtpOptions> smtpOptions,
    IOptions<DkimOptions> dkimOptions,
    TimeProvider clock,
    ILogger<SendJobRunner> logger)
{
    public const string UnknownOutcome = "outcome unknown: the runner stopped during the SMTP transaction; not retried to avoid a duplicate";

    private sealed record JobRow(Guid Id, Guid TenantId, Guid ListId, string Status, string Subject, string? BodyHtml, string? BodyText, bool SnapshotDone, DateTimeOffset ScheduledAt);

    /// <summary>Entry point scheduled at the job's scheduled_at: snapshot (resumable), then delivery.</summary>
    [AutomaticRetry(Attempts = 10)]
    [JobDisplayName("Send job {0}")]
    public async Task RunAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var job = await LoadAsync(jobId, cancellationToken);
        if (job is null || job.Status is SendJobStatuses.Completed or SendJobStatuses.Cancelled or SendJobStatuses.Failed)
        {
            return;
        }
        // Hangfire's schedule has whole-second resolution, so it may fire a moment early.
        var early = job.ScheduledAt - clock.GetUtcNow();
        if (early > TimeSpan.Zero)
        {
            if (early > TimeSpan.FromMinutes(1))
            {
                jobs.Schedule<SendJobRunner>(r => r.RunAsync(jobId, CancellationToken.None), job.ScheduledAt);
                return;
            }
            await Task.Delay(early, clock, cancellationToken);
        }
        if (job.SnapshotDone)
        {
            await DeliverCoreAsync(jobId, null, cancellationToken);
            return;
        }
        await Sql.ExecuteAsync(db, "UPDATE send_jobs SET status = 'queued' WHERE id = $1 AND status = 'scheduled'", cancellationToken, jobId);
        LogSnapshotStarting(logger, jobId);
        // Delivery starts as soon as the first page is committed and runs alongside the rest of the snapshot, so the
        // first message does not wait for a whole large list to be copied.
        var progress = new SnapshotProgress(clock);
        using var deliveryStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var snapshotTask = TakeSnapshotAsync(job, progress, cancellationToken);
        await Task.WhenAny(progress.FirstPage, snapshotTask);
        var delivery = Task.CompletedTask;
        if (progress.FirstPage.IsCompleted)
        {
            for (var i = 1; i < jobOptions.Value.Runners; i++)
            {
                jobs.Enqueue<SendJobRunner>(r => r.DeliverAsync(jobId, CancellationToken.None));
            }
            delivery = DeliverCoreAsync(jobId, progress, deliveryStop.Token);
        }
        RecipientSnapshot.Outcome outcome;
        try
        {
            outcome = await snapshotTask;
        }
        catch
        {
            // Stop delivering too (its in-flight messages finish and its claims are released), and let Hangfire run
            // the job again: it resumes the snapshot at its cursor.
            await deliveryStop.CancelAsync();
            try
            {
                await delivery;
            }
            catch (OperationCanceledException)
            {
            }
            throw;
        }
        if (outcome == RecipientSnapshot.Outcome.ListNotFound)
        {
            // Delivery (if a page made it in) sees the status and stops.
            await FailAsync(jobId, "The list does not exist at Member Center (deleted, or not this tenant's).", CancellationToken.None);
        }
        await delivery;
    }

    private async Task<RecipientSnapshot.Outcome> TakeSnapshotAsync(JobRow job, SnapshotProgress progress, CancellationToken ct)
    {
        try
        {
            return await snapshot.TakeAsync(job.Id, job.TenantId, job.ListId, progress.PageCommitted, ct);
        }
        finally
        {
            progress.End();
        }
    }

    /// <summary>Delivers the job's remaining recipients; returns when none is left, the job is cancelled or failed, or on shutdown.</summary>
    [AutomaticRetry(Attempts = 10)]
    [JobDisplayName("Deliver send job {0}")]
    public Task DeliverAsync(Guid jobId, CancellationToken cancellationToken) => DeliverCoreAsync(jobId, null, cancellationToken);

    /// <param name="progress">The snapshot this process is taking for the job, if any (wakes the claim loop per page).</param>
    private async Task DeliverCoreAsync(Guid jobId, SnapshotProgress? progress, CancellationToken cancellationToken)
    {
        var job = await LoadAsync(jobId, cancellationToken);
        if (job?.Status == SendJobStatuses.Cancelled)
        {
            // Cancelled while the snapshot was being written: its last pages may have landed after the cancel.
            await Sql.ExecuteAsync(db, "UPDATE send_job_recipients SET status = 'cancelled' WHERE job_id = $1 AND status = 'pending'", cancellationToken, jobId);
        }
        if (job is null || job.Status != SendJobStatuses.Sending)
        {
            return;
        }
        var o = jobOptions.Value;
        var runnerId = Guid.NewGuid();
        var composer = new MessageComposer(smtpOptions.Value, MessageComposer.CreateSigner(dkimOptions.Value), job.Subject, job.BodyHtml, job.BodyText);
        var state = new RunState();
        // stop: shutdown, cancellation or failure of the job; workers finish the message in hand and release the rest.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateBounded<Claimed>(new BoundedChannelOptions(o.BatchSize) { SingleWriter = true });
        using var limiter = deliveryOptions.Value.MessagesPerSecond > 0 ? CreateLimiter(deliveryOptions.Value.MessagesPerSecond) : null;
        LogDeliveryStarting(logger, jobId, runnerId, deliveryOptions.Value.Concurrency);

        var ledger = await DeliveryLedger.OpenAsync(db, runnerId, clock, o.Lease, cancellationToken);
        var workers = Enumerable.Range(0, deliveryOptions.Value.Concurrency)
            .Select(_ => Task.Run(() => WorkerAsync(job, composer, channel.Reader, ledger, limiter, state, stop), CancellationToken.None))
            .ToArray();
        var housekeeping = Task.Run(() => HousekeepingAsync(jobId, runnerId, state, stop), CancellationToken.None);
        try
        {
            await ClaimLoopAsync(job, runnerId, channel.Writer, state, progress, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Shutdown, cancel or failure; handled below.
        }
        finally
        {
            channel.Writer.TryComplete();
            await Task.WhenAll(workers);
            await ledger.DisposeAsync();
            await stop.CancelAsync();
            await housekeeping;
            // Rows this runner claimed but never attempted go back to the pool, or are cancelled with the job; so are the
            // pending rows of a cancelled job (a transient failure recorded after the cancel): nothing will retry them.
            await Sql.ExecuteAsync(db, """
                UPDATE send_job_recipients r SET status = CASE WHEN j.status = 'cancelled' THEN 'cancelled' ELSE 'pending' END,
                    claimed_by = NULL, lease_until = NULL, updated_at = $3
                FROM send_jobs j WHERE j.id = r.job_id AND r.job_id = $1
                  AND ((r.claimed_by = $2 AND r.status = 'claimed') OR (j.status = 'cancelled' AND r.status = 'pending'))
                """, CancellationToken.None, jobId, runnerId, clock.GetUtcNow());
            await SuppressHardBouncesAsync(jobId, CancellationToken.None);
        }

        if (state.FailedJob is { } error)
        {
            await FailAsync(jobId, error, CancellationToken.None);
        }
        else if (state.WorkerError is { } workerError)
        {
            throw new InvalidOperationException($"Send job {jobId}: a delivery worker failed; the runner stopped and will be retried.", workerError);
        }
        else if (!cancellationToken.IsCancellationRequested)
        {
            var finished = await Sql.ExecuteAsync(db, """
                UPDATE send_jobs SET status = 'completed', finished_at = $2
                WHERE id = $1 AND status = 'sending' AND snapshot_completed_at IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM send_job_recipients WHERE job_id = $1 AND status IN ('pending', 'claimed', 'sending'))
                """, CancellationToken.None, jobId, clock.GetUtcNow());
            if (finished > 0)
            {
                LogCompleted(logger, jobId, state.Sent, state.Failed);
            }
        }
        // On shutdown Hangfire must see the job as aborted, not succeeded, so it runs again on the next start.
        cancellationToken.ThrowIfCancellationRequested();
    }

    private async Task ClaimLoopAsync(JobRow job, Guid runnerId, ChannelWriter<Claimed> writer, RunState state, SnapshotProgress? progress, CancellationToken ct)
    {
        var o = jobOptions.Value;
        await using var conn = await db.OpenConnectionAsync(ct);
        var lastRecovery = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested && state.FailedJob is null)
        {
            var now = clock.GetUtcNow();
            // Leases only expire when a runner died, so looking for them every half lease is enough (per batch it was
            // 5 % of the job's statement time).
            if (now - lastRecovery >= o.Lease / 2)
            {
                await RecoverExpiredAsync(conn, job.Id, now, ct);
                lastRecovery = now;
            }
            var batch = new List<Claimed>(o.BatchSize);
            await using (var cmd = Sql.Command(conn, """
                UPDATE send_job_recipients SET status = 'claimed', claimed_by = $2, lease_until = $3, updated_at = $4
                WHERE id IN (SELECT id FROM send_job_recipients
                             WHERE job_id = $1 AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $4)
                             ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)
                RETURNING id, email, preferences::text, unsubscribe_url, attempts
                """, job.Id, runnerId, now + o.Lease, now, o.BatchSize))
            {
                await using var reader = await cmd.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                {
                    batch.Add(new Claimed(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4)));
                }
            }

            if (batch.Count == 0)
            {
                // Nothing claimable: done, or rows held by workers (ours or another runner's), waiting for a retry, or
                // not yet copied by the snapshot.
                await using (var open = Sql.Command(conn, """
                    SELECT EXISTS (SELECT 1 FROM send_job_recipients WHERE job_id = $1 AND status IN ('pending', 'claimed', 'sending'))
                        OR EXISTS (SELECT 1 FROM send_jobs WHERE id = $1 AND snapshot_completed_at IS NULL)
                    """, job.Id))
                {
                    if (!(bool)(await open.ExecuteScalarAsync(ct))!)
                    {
                        return;
                    }
                }
                if (progress is { Ended: false })
                {
                    await progress.NextPageAsync(o.PollInterval, ct);
                }
                else
                {
                    await Task.Delay(o.PollInterval, clock, ct);
                }
                continue;
            }

            batch.Sort((a, b) => a.Id.CompareTo(b.Id));
            var sendable = await FilterAsync(conn, job, batch, state, ct);
            foreach (var r in sendable)
            {
                await writer.WriteAsync(r, ct);
            }
        }
    }

    /// <summary>Suppressed (own list) or not sendable (Member Center's re-check) rows are marked suppressed; the rest returned.</summary>
    private async Task<List<Claimed>> FilterAsync(NpgsqlConnection conn, JobRow job, List<Claimed> batch, RunState state, CancellationToken ct)
    {
        var skipped = new Dictionary<long, string>();
        var keys = batch.Select(r => Suppression.Normalize(r.Email)).Distinct().ToArray();
        await using (var cmd = Sql.Command(conn, "SELECT email, reason FROM suppressions WHERE tenant_id = $1 AND email = ANY($2)", job.TenantId, keys))
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            var suppressed = new Dictionary<string, string>(StringComparer.Ordinal);
            while (await reader.ReadAsync(ct))
            {
                suppressed[reader.GetString(0)] = reader.GetString(1);
            }
            foreach (var r in batch)
            {
                if (suppressed.TryGetValue(Suppression.Normalize(r.Email), out var reason))
                {
                    skipped[r.Id] = "suppressed: " + reason;
                }
            }
        }

        IReadOnlyList<string> notSendable;
        try
        {
            notSendable = await memberCenter.GetNotSendableAsync(job.TenantId, job.ListId, batch.Select(r => r.Email).ToList(), ct);
        }
        catch (Exception ex) when (ex is MemberCenterException or HttpRequestException || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            // Without the re-check we might mail someone who just left: hand the batch back and try again shortly.
            LogRecheckFailed(logger, job.Id, ex.Message);
            state.RegisterFailure(jobOptions.Value.MaxConsecutiveFailures, "Member Center re-check failed: " + ex.Message);
            await Sql.ExecuteAsync(conn, """
                UPDATE send_job_recipients SET status = 'pending', claimed_by = NULL, lease_until = NULL, next_attempt_at = $2
                WHERE id = ANY($1) AND status = 'claimed'
                """, ct, batch.Select(r => r.Id).ToArray(), clock.GetUtcNow() + TimeSpan.FromSeconds(5));
            return [];
        }
        var gone = notSendable.Select(Suppression.Normalize).ToHashSet(StringComparer.Ordinal);
        foreach (var r in batch)
        {
            if (!skipped.ContainsKey(r.Id) && gone.Contains(Suppression.Normalize(r.Email)))
            {
                skipped[r.Id] = "not sendable: unsubscribed or undeliverable since the snapshot";
            }
        }
        if (skipped.Count > 0)
        {
            await Sql.ExecuteAsync(conn, """
                UPDATE send_job_recipients r SET status = 'suppressed', detail = d.detail, claimed_by = NULL, lease_until = NULL, updated_at = $3
                FROM unnest($1::bigint[], $2::text[]) AS d(id, detail) WHERE r.id = d.id AND r.status = 'claimed'
                """, ct, skipped.Keys.ToArray(), skipped.Values.ToArray(), clock.GetUtcNow());
        }
        return batch.Where(r => !skipped.ContainsKey(r.Id)).ToList();
    }

    /// <summary>
    /// A worker that fails (a database error) stops the whole runner: its row in 'sending' must not have its lease
    /// renewed forever. The runner releases its claims and rethrows, so Hangfire runs the job again; that row's lease
    /// then expires and it is recorded as failed with an unknown outcome (at-most-once).
    /// </summary>
    private async Task WorkerAsync(JobRow job, MessageComposer composer, ChannelReader<Claimed> reader, DeliveryLedger ledger,
        RateLimiter? limiter, RunState state, CancellationTokenSource stop)
    {
        try
        {
            await DeliverMessagesAsync(job, composer, reader, ledger, limiter, state, stop);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stop.IsCancellationRequested)
        {
            LogWorkerFailed(logger, job.Id, ex.GetType().Name, ex.Message);
            Interlocked.CompareExchange(ref state.WorkerError, ex, null);
            await stop.CancelAsync();
        }
    }

    private async Task DeliverMessagesAsync(JobRow job, MessageComposer composer, ChannelReader<Claimed> reader, DeliveryLedger ledger,
        RateLimiter? limiter, RunState state, CancellationTokenSource stop)
    {
        await using var session = transports.For(job.TenantId).OpenSession();
        var o = jobOptions.Value;
        var groupSize = deliveryOptions.Value.GroupSize;
        var results = new List<AttemptResult>(groupSize);
        var candidates = new List<Claimed>(groupSize);
        try
        {
            while (true)
            {
                // The next group: one recipient (waiting for it after recording what is done), then whatever else is
                // ready right now, as long as the rate limit allows sending it now too.
                candidates.Clear();
                if (!reader.TryRead(out var first))
                {
                    await ledger.RecordAsync(results);
                    if (!await reader.WaitToReadAsync(stop.Token) || !reader.TryRead(out first))
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
                        using var later = await limiter.AcquireAsync(1, stop.Token);
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
                // before any of the group is attempted: the durable record that their attempts started. A row whose
                // lease was lost to another runner does not come back.
                var marked = await ledger.RecordAndMarkAsync(results, candidates);
                for (var i = 0; i < marked.Count; i++)
                {
                    if (stop.IsCancellationRequested)
                    {
                        // Stopping: the rest of the group was never attempted and goes back to the runner's claims.
                        await ledger.UnmarkAsync(marked.Skip(i).Select(r => r.Id).ToArray());
                        break;
                    }
                    var r = marked[i];
                    var (messageId, result) = await SendOneAsync(r, composer, session);
                    results.Add(Outcome(r, messageId, result, state));
                    if (result.Outcome == DeliveryOutcome.Sent)
                    {
                        state.RegisterSuccess();
                    }
                    else if (IsTransient(result.Outcome) && state.RegisterFailure(o.MaxConsecutiveFailures, result.Detail))
                    {
                        LogTooManyFailures(logger, job.Id, o.MaxConsecutiveFailures, result.Detail);
                        await stop.CancelAsync();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopping; unattempted rows are released by the runner.
        }
        finally
        {
            await ledger.RecordAsync(results);
        }
    }

    // Until the delivery worker is rebuilt (issue 10), Deferred, Unavailable and Misconfigured are retried like the
    // transient failures they replace; Unknown is recorded failed with its detail, never retried.
    private static bool IsTransient(DeliveryOutcome outcome) =>
        outcome is DeliveryOutcome.Deferred or DeliveryOutcome.Unavailable or DeliveryOutcome.Misconfigured;

    private static async Task<(string? MessageId, DeliveryResult Result)> SendOneAsync(Claimed r, MessageComposer composer, ITransportSession session)
    {
        try
        {
            var data = new MergeData(r.Email, r.UnsubscribeUrl, JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(r.Preferences) ?? []);
            var message = composer.Compose(data);
            // Not cancelled by stop: the transaction in flight completes and is recorded.
            return (message.MessageId, await session.SendAsync(message, CancellationToken.None));
        }
        catch (Exception ex) when (ex is FormatException or MimeKit.ParseException or JsonException)
        {
            return (null, new DeliveryResult(DeliveryOutcome.Rejected, "invalid message: " + ex.Message));
        }
    }

    private AttemptResult Outcome(Claimed r, string? messageId, DeliveryResult result, RunState state)
    {
        var detail = result.Detail.Length > 1000 ? result.Detail[..1000] : result.Detail;
        switch (result.Outcome)
        {
            case DeliveryOutcome.Sent:
                Interlocked.Increment(ref state.Sent);
                return new AttemptResult(r.Id, RecipientStatuses.Sent, result.ProviderMessageId ?? messageId!, detail, null);
            case var transient when IsTransient(transient) && r.Attempts + 1 < jobOptions.Value.MaxAttempts:
                var delay = TimeSpan.FromTicks(Math.Min(jobOptions.Value.RetryBaseDelay.Ticks * (1L << Math.Min(r.Attempts, 16)), TimeSpan.FromMinutes(30).Ticks));
                return new AttemptResult(r.Id, RecipientStatuses.Pending, null, detail, delay);
            default:
                Interlocked.Increment(ref state.Failed);
                return new AttemptResult(r.Id, RecipientStatuses.Failed, messageId, detail, null);
        }
    }

    /// <summary>Renews this runner's leases, watches for cancellation, logs progress.</summary>
    private async Task HousekeepingAsync(Guid jobId, Guid runnerId, RunState state, CancellationTokenSource stop)
    {
        var o = jobOptions.Value;
        var lastRenew = clock.GetUtcNow();
        var lastLog = lastRenew;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(o.PollInterval, clock, stop.Token);
                var now = clock.GetUtcNow();
                var status = await Sql.ScalarAsync<string>(db, "SELECT status FROM send_jobs WHERE id = $1", stop.Token, jobId);
                if (status != SendJobStatuses.Sending)
                {
                    LogStopping(logger, jobId, status ?? "deleted");
                    await stop.CancelAsync();
                    return;
                }
                if (now - lastRenew >= o.Lease / 3)
                {
                    // SKIP LOCKED: a row a worker is updating right now gets its lease from that update (or loses it
                    // on completion); waiting for it could deadlock with the worker's two-row transaction.
                    await Sql.ExecuteAsync(db, """
                        UPDATE send_job_recipients SET lease_until = $3
                        WHERE id IN (SELECT id FROM send_job_recipients
                                     WHERE job_id = $1 AND claimed_by = $2 AND status IN ('claimed', 'sending')
                                     FOR UPDATE SKIP LOCKED)
                        """, stop.Token, jobId, runnerId, now + o.Lease);
                    lastRenew = now;
                }
                if (now - lastLog >= TimeSpan.FromSeconds(10))
                {
                    LogProgress(logger, jobId, state.Sent, state.Failed);
                    await SuppressHardBouncesAsync(jobId, stop.Token);
                    lastLog = now;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException ex)
            {
                LogHousekeepingFailed(logger, jobId, ex.Message);
            }
        }
    }

    /// <summary>Rows whose runner died: never attempted → pending again; attempt in flight → failed (at-most-once).</summary>
    private async Task RecoverExpiredAsync(NpgsqlConnection conn, Guid jobId, DateTimeOffset now, CancellationToken ct)
    {
        await Sql.ExecuteAsync(conn, """
            UPDATE send_job_recipients SET status = 'pending', claimed_by = NULL, lease_until = NULL, updated_at = $2
            WHERE job_id = $1 AND status = 'claimed' AND lease_until < $2
            """, ct, jobId, now);
        var unknown = await Sql.ExecuteAsync(conn, """
            UPDATE send_job_recipients SET status = 'failed', claimed_by = NULL, lease_until = NULL, updated_at = $2, detail = $3
            WHERE job_id = $1 AND status = 'sending' AND lease_until < $2
            """, ct, jobId, now, UnknownOutcome);
        if (unknown > 0)
        {
            LogUnknownOutcome(logger, jobId, unknown);
        }
    }

    private async Task<JobRow?> LoadAsync(Guid jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            SELECT id, tenant_id, list_id, status, subject, body_html, body_text, snapshot_completed_at IS NOT NULL, scheduled_at FROM send_jobs WHERE id = $1
            """, jobId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
        {
            return null;
        }
        return new JobRow(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetString(4),
            reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetBoolean(7), reader.GetFieldValue<DateTimeOffset>(8));
    }

    /// <summary>
    /// A receiving server that refused a mailbox outright (550 5.1.1 user unknown, 5.1.x bad address, 5.2.1 mailbox
    /// disabled) has given a hard bounce without any ESP event: the address joins the tenant's suppressions (source
    /// delivery) and is reported to Member Center like an ESP hard bounce. Read back from the recorded results, so it
    /// is idempotent and a runner that dies before it runs leaves the work to the next; run every 10 s and at the end.
    /// </summary>
    private async Task SuppressHardBouncesAsync(Guid jobId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var added = await Sql.ExecuteAsync(db, """
            WITH bounced AS (
                SELECT DISTINCT j.tenant_id, lower(btrim(r.email)) AS email
                FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
                WHERE r.job_id = $1 AND r.status = 'failed' AND r.detail ~ $2),
            added AS (
                INSERT INTO suppressions (tenant_id, email, reason, source, created_at)
                SELECT tenant_id, email, 'hard_bounce', 'delivery', $3 FROM bounced
                ON CONFLICT (tenant_id, email) DO NOTHING
                RETURNING tenant_id, email)
            INSERT INTO member_center_reports (tenant_id, email, reason, list_id, occurred_at, created_at, attempts, next_attempt_at)
            SELECT tenant_id, email, 'hard_bounce', NULL, $3, $3, 0, $3 FROM added
            """, ct, jobId, MailboxRejectedPattern, now);
        if (added > 0)
        {
            LogHardBounces(logger, jobId, added);
        }
    }

    /// <summary>A recorded SMTP reply that rejects the mailbox itself (RFC 3463 X.1.0–X.1.3, X.1.10, X.2.1), as PostgreSQL regex.</summary>
    public const string MailboxRejectedPattern = @"^5[0-9][0-9] 5\.(1\.(0|1|2|3|10)|2\.1)([^0-9]|$)";

    private async Task FailAsync(Guid jobId, string error, CancellationToken ct)
    {
        var changed = await Sql.ExecuteAsync(db, """
            UPDATE send_jobs SET status = 'failed', last_error = $2, finished_at = $3 WHERE id = $1 AND status IN ('scheduled', 'queued', 'sending')
            """, ct, jobId, error.Length > 2000 ? error[..2000] : error, clock.GetUtcNow());
        if (changed > 0)
        {
            LogFailed(logger, jobId, error);
        }
    }

    private static TokenBucketRateLimiter CreateLimiter(double perSecond)
    {
        // Refill every 50 ms so the rate is smooth; the bucket holds at most 50 ms worth (at least one token).
        var perPeriod = Math.Max(1, (int)Math.Round(perSecond / 20));
        var period = TimeSpan.FromSeconds(perPeriod / perSecond);
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = perPeriod,
            TokensPerPeriod = perPeriod,
            ReplenishmentPeriod = period,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    /// <summary>Signals from the snapshot taken in this process to its delivery: first page in, each page, the end.</summary>
    private sealed class SnapshotProgress(TimeProvider clock)
    {
        private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource _page = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task FirstPage => _first.Task;

        public bool Ended { get; private set; }

        public void PageCommitted()
        {
            _first.TrySetResult();
            Interlocked.Exchange(ref _page, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        public void End()
        {
            Ended = true;
            Interlocked.Exchange(ref _page, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        /// <summary>Waits for the next committed page, at most <paramref name="max"/>.</summary>
        public async Task NextPageAsync(TimeSpan max, CancellationToken ct)
        {
            await Task.WhenAny(Volatile.Read(ref _page).Task, Task.Delay(max, clock, ct));
            ct.ThrowIfCancellationRequested();
        }
    }

    private sealed class RunState
    {
        public int Sent;
        public int Failed;
        public Exception? WorkerError;
        private int _consecutiveFailures;

        public string? FailedJob { get; private set; }

        public void RegisterSuccess() => Interlocked.Exchange(ref _consecutiveFailures, 0);

        /// <summary>True when this failure crosses the limit (the job should fail).</summary>
        public bool RegisterFailure(int limit, string detail)
        {
            if (Interlocked.Increment(ref _consecutiveFailures) < limit)
            {
                return false;
            }
            FailedJob ??= $"{limit} consecutive delivery failures; last: {detail}";
            return true;
        }
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Count} addresses refused as unknown mailboxes added to the tenant's suppressions")]
    private static partial void LogHardBounces(ILogger logger, Guid jobId, int count);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: taking the recipient snapshot")]
    private static partial void LogSnapshotStarting(ILogger logger, Guid jobId);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: runner {RunnerId} delivering with {Concurrency} connections")]
    private static partial void LogDeliveryStarting(ILogger logger, Guid jobId, Guid runnerId, int concurrency);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Sent} sent, {Failed} failed by this runner so far")]
    private static partial void LogProgress(ILogger logger, Guid jobId, int sent, int failed);

    [LoggerMessage(LogLevel.Information, "Send job {JobId} completed: {Sent} sent, {Failed} failed by this runner")]
    private static partial void LogCompleted(ILogger logger, Guid jobId, int sent, int failed);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: status is {Status}, stopping")]
    private static partial void LogStopping(ILogger logger, Guid jobId, string status);

    [LoggerMessage(LogLevel.Error, "Send job {JobId} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Guid jobId, string error);

    [LoggerMessage(LogLevel.Error, "Send job {JobId}: {Limit} consecutive failures, last: {Error}")]
    private static partial void LogTooManyFailures(ILogger logger, Guid jobId, int limit, string error);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: {Count} recipients were in an SMTP transaction when their runner stopped; recorded as failed (outcome unknown)")]
    private static partial void LogUnknownOutcome(ILogger logger, Guid jobId, int count);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: Member Center re-check failed, batch released: {Error}")]
    private static partial void LogRecheckFailed(ILogger logger, Guid jobId, string error);

    [LoggerMessage(LogLevel.Error, "Send job {JobId}: a delivery worker failed ({ErrorType}): {Error}; stopping this runner")]
    private static partial void LogWorkerFailed(ILogger logger, Guid jobId, string errorType, string error);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: housekeeping query failed: {Error}")]
    private static partial void LogHousekeepingFailed(ILogger logger, Guid jobId, string error);
}
