using Newsletter.ServiceDefaults.Privacy;
using System.Net;
using System.Threading.Channels;
using System.Threading.RateLimiting;
using Hangfire;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Mail;
using Npgsql;
using SendEngine.Composition;
using SendEngine.Features.SenderDomains;
using SendEngine.Features.Webhooks;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Suppressions;
using SendEngine.Transports;

namespace SendEngine.Delivery;

/// <summary>
/// The Hangfire job that runs a send job, orchestration only: it takes the recipient snapshot (resumable) and, from its
/// first page on, delivers: a <see cref="RecipientClaimer"/> feeds a bounded channel read by
/// <see cref="DeliveryOptions.Concurrency"/> <see cref="DeliveryWorker"/>s, whose marks and results go through one
/// <see cref="DeliveryLedger"/>; every status change is <see cref="RecipientStore"/>'s. An outage (the transport or
/// Member Center) pauses the job and schedules its resume; a failure of our own code fails it. Several runners, in one
/// process or many, can work on the same job (see docs/send-engine.md).
/// </summary>
public sealed partial class SendJobRunner(
    RecipientStore store,
    RecipientSnapshot snapshot,
    NpgsqlDataSource db,
    // The ledger's connection keeps generic plans that never scan a table an index serves: a generic plan made while the
    // job's snapshot was still being written (a sequential scan of a nearly empty table) stayed for the whole job, and
    // planning each execution instead cost a third of the statements' time.
    [FromKeyedServices(Extensions.DataExtensions.GenericPlans)] NpgsqlDataSource ledgerDb,
    MemberCenterClient memberCenter,
    AddressHasher hasher,
    TransportResolver transports,
    WebhookPublisher webhooks,
    IBackgroundJobClient jobs,
    Features.Reputation.SendingLimits limits,
    IOptions<SendJobOptions> jobOptions,
    IOptions<DeliveryOptions> deliveryOptions,
    IOptions<SmtpOptions> smtpOptions,
    SenderSigning senders,
    ReturnPath returnPath,
    IOptions<SenderDomainOptions> senderDomainOptions,
    TimeProvider clock,
    ILogger<SendJobRunner> logger)
{
    /// <summary>
    /// Entry point, scheduled at the job's scheduled_at: snapshot, then delivery. A job that pauses with a retry time
    /// within <see cref="InProcessWait"/> is waited for here and resumed (no round trip through Hangfire's schedule);
    /// a longer pause is scheduled with Hangfire and this worker is freed. The watchdog resumes a paused job whose
    /// retry time is long past, should both be lost.
    /// </summary>
    [AutomaticRetry(Attempts = 10)]
    [JobDisplayName("Send job {0}")]
    public async Task RunAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var pickedUp = clock.GetUtcNow();
        var job = await store.LoadJobAsync(jobId, cancellationToken);
        while (true)
        {
            if (job?.Status == SendJobStatuses.Paused && job.ResumeAt is { } resumeAt)
            {
                var wait = resumeAt - clock.GetUtcNow();
                if (wait > InProcessWait)
                {
                    jobs.Schedule<SendJobRunner>(r => r.RunAsync(jobId, CancellationToken.None), resumeAt);
                    return;
                }
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, clock, cancellationToken);
                }
                // When the resume does not take (not due by the database's clock yet: a timer may wake a moment early,
                // and PostgreSQL rounds the stored time to microseconds; or no longer paused: resumed or cancelled
                // meanwhile), the job as it is now decides again.
                var resumed = await store.ResumeAsync(jobId, byOperator: false, cancellationToken);
                job = await store.LoadJobAsync(jobId, cancellationToken);
                if (!resumed)
                {
                    continue;
                }
            }
            if (job is null || job.Status is not (SendJobStatuses.Scheduled or SendJobStatuses.Queued or SendJobStatuses.Sending))
            {
                return;
            }
            await RunOnceAsync(job, pickedUp, cancellationToken);
            // Paused with a retry time (by this run or another runner of the job): wait for it above. Otherwise done.
            job = await store.LoadJobAsync(jobId, cancellationToken);
            if (job is not { Status: SendJobStatuses.Paused, ResumeAt: not null })
            {
                return;
            }
        }
    }

    private const string ListGone = "The list does not exist at Member Center (deleted, or not this tenant's).";

    /// <summary>Pauses shorter than this are waited out by the runner itself.</summary>
    public static readonly TimeSpan InProcessWait = TimeSpan.FromMinutes(1);

    private async Task RunOnceAsync(DeliveryJob job, DateTimeOffset pickedUp, CancellationToken cancellationToken)
    {
        var jobId = job.Id;
        // Hangfire's schedule has whole-second resolution, so it may fire a moment early.
        var early = job.ScheduledAt - clock.GetUtcNow();
        if (early > TimeSpan.FromMinutes(1))
        {
            jobs.Schedule<SendJobRunner>(r => r.RunAsync(jobId, CancellationToken.None), job.ScheduledAt);
            return;
        }
        if (early > TimeSpan.Zero)
        {
            await Task.Delay(early, clock, cancellationToken);
        }
        if (job.SnapshotDone)
        {
            await DeliverCoreAsync(jobId, null, null, cancellationToken);
            return;
        }
        // Timed only for a job that has not started yet: the way from POST /api/send-jobs to its first message.
        var timeline = job.Status == SendJobStatuses.Scheduled ? new StartTimeline(clock, job.CreatedAt, pickedUp) : null;
        await store.MarkQueuedAsync(jobId, cancellationToken);
        timeline?.Mark("queued");
        // Delivery starts as soon as the first page is committed and runs alongside the rest of the snapshot, so the
        // first message does not wait for a whole large list to be copied.
        var progress = new SnapshotProgress(clock) { Timeline = timeline };
        using var deliveryStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var fromAddress = job.FromEmail ?? smtpOptions.Value.FromAddress;
        var snapshotTask = snapshot.TakeAsync(jobId, job.TenantId, job.ListId, MessageComposer.MessageIdDomainOf(fromAddress), progress, cancellationToken);
        // What delivery needs besides recipients (the link key from Member Center, the sender's signing identity) is
        // fetched while the first page is read and copied, not after it.
        var prepared = new DeliveryPreparation(
            JobLinkKey.OpenAsync(store, memberCenter, job, deliveryStop.Token),
            senders.ResolveAsync(job.TenantId, fromAddress, deliveryStop.Token));
        await Task.WhenAny(progress.FirstPage, snapshotTask);
        var delivery = Task.CompletedTask;
        if (progress.FirstPage.IsCompleted)
        {
            for (var i = 1; i < jobOptions.Value.Runners; i++)
            {
                jobs.Enqueue<SendJobRunner>(r => r.DeliverAsync(jobId, CancellationToken.None));
            }
            delivery = DeliverCoreAsync(jobId, progress, prepared, deliveryStop.Token);
        }
        else
        {
            // No delivery (the list is gone, the job stopped, Member Center is down): its answers are not wanted.
            prepared.Abandon();
        }
        try
        {
            if (await snapshotTask == RecipientSnapshot.Outcome.ListNotFound)
            {
                // Delivery (if a page made it in) sees the status and stops.
                await store.FailAsync(jobId, ListGone, CancellationToken.None);
            }
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, cancellationToken))
        {
            // Member Center is down: delivery stops too (rows read but not marked stay pending), and the job resumes the snapshot at
            // its cursor when it comes back.
            await PauseAsync(jobId, "Member Center is unavailable for the recipient snapshot: " + ex.Message, MemberCenterClient.NeedsOperator(ex));
        }
        catch
        {
            // Our own failure or the database's: stop delivering and let Hangfire run the job again.
            await deliveryStop.CancelAsync();
            await delivery.ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
        }
        await delivery;
    }

    /// <summary>Delivers the job's remaining recipients; returns when none is left, the job stops running, or on shutdown.</summary>
    [AutomaticRetry(Attempts = 10)]
    [JobDisplayName("Deliver send job {0}")]
    public Task DeliverAsync(Guid jobId, CancellationToken cancellationToken) => DeliverCoreAsync(jobId, null, null, cancellationToken);

    /// <summary>The link key and the sender, being fetched while the snapshot's first page is read.</summary>
    private sealed record DeliveryPreparation(Task<UnsubscribeLinks> Links, Task<SenderIdentity> Sender)
    {
        /// <summary>Observes the tasks' failures, which nobody will await.</summary>
        public void Abandon() => _ = Task.WhenAll(Links, Sender).ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
    }

    /// <param name="progress">The snapshot this process is taking for the job, if any (wakes the claimer per page).</param>
    /// <param name="prepared">The link key and sender already being fetched (by the run taking the snapshot), or null.</param>
    private async Task DeliverCoreAsync(Guid jobId, SnapshotProgress? progress, DeliveryPreparation? prepared, CancellationToken cancellationToken)
    {
        var job = await store.LoadJobAsync(jobId, cancellationToken);
        if (job is null || job.Status != SendJobStatuses.Sending)
        {
            prepared?.Abandon();
            return;
        }
        UnsubscribeLinks links;
        try
        {
            links = await (prepared?.Links ?? JobLinkKey.OpenAsync(store, memberCenter, job, cancellationToken));
        }
        catch (MemberCenterException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            prepared?.Abandon();
            await store.FailAsync(jobId, ListGone, CancellationToken.None);
            return;
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, cancellationToken))
        {
            prepared?.Abandon();
            await PauseAsync(jobId, "Member Center is unavailable for the unsubscribe link key: " + ex.Message, MemberCenterClient.NeedsOperator(ex));
            return;
        }
        progress?.Timeline?.Mark("link key");
        var o = jobOptions.Value;
        var d = deliveryOptions.Value;
        // The sender domain is checked again at each runner start: a domain that lost its verification since the job
        // was created pauses the job for an operator instead of sending unauthenticated mail in the tenant's name.
        var smtp = smtpOptions.Value;
        var fromAddress = job.FromEmail ?? smtp.FromAddress;
        var sender = await (prepared?.Sender ?? senders.ResolveAsync(job.TenantId, fromAddress, cancellationToken));
        if (!sender.Verified && !senders.AllowUnverified)
        {
            await PauseAsync(jobId, $"The sender domain {sender.Domain ?? fromAddress} is not verified for this tenant; verify it "
                + "(POST /api/sender-domains/{domain}/verify), then resume the job.", needsOperator: true);
            return;
        }
        var timeline = progress?.Timeline;
        timeline?.Mark("sender checked");
        using var run = new DeliveryRun(job, Guid.NewGuid(), cancellationToken, progress is null ? null : () =>
        {
            progress.FirstMessageAttempted();
            if (timeline is not null)
            {
                timeline.Mark("first message sent");
                LogStartTimeline(logger, jobId, timeline.Describe());
            }
        }, timeline);
        // The branded CAN-SPAM footer goes into the job's templates once per footer language, before they are compiled
        // for the run; each message only picks its recipient's.
        await store.SetPostalAddressMissingAsync(jobId, links.PostalAddress is null, cancellationToken);
        var headers = BulkHeaders(job, sender.Domain ?? "send-engine.local", senderDomainOptions.Value.FeedbackSenderId);
        Func<long, string>? envelopeFor = sender.ReturnPathDomain is { } bounceDomain ? id => returnPath.ForRecipient(id, bounceDomain) : null;
        MessageAddress? from = job.FromEmail is { } ownFrom ? new MessageAddress(job.FromName, ownFrom) : null;
        var composers = new BulkComposers(job.BodyHtml, job.BodyText, links.Footer,
            (bodyHtml, bodyText) => new MessageComposer(smtp, sender.Dkim, job.Subject, bodyHtml, bodyText, headers, envelopeFor, from));
        var channel = Channel.CreateBounded<Claimed>(new BoundedChannelOptions(o.BatchSize) { SingleWriter = true });
        using var limiter = d.MessagesPerSecond > 0 ? CreateLimiter(d.MessagesPerSecond) : null;
        var transport = await transports.ForAsync(job.TenantId, cancellationToken);
        LogDeliveryStarting(logger, jobId, run.RunnerId, d.Concurrency);
        // Process-wide (other work of the process counts too): the per-message figure docs/performance.md quotes.
        var allocatedAtStart = GC.GetTotalAllocatedBytes();

        var ledger = await DeliveryLedger.OpenAsync(ledgerDb, run.RunnerId, clock, o.Lease, cancellationToken, webhooks, job.TenantId, run.Reservations);
        timeline?.Mark("ledger open");
        var workers = Enumerable.Range(0, d.Concurrency)
            .Select(_ => new DeliveryWorker(run, composers, links, transport, channel.Reader, ledger, limiter, o, d.GroupSize, logger))
            .Select(w => Task.Run(w.RunAsync, CancellationToken.None))
            .ToArray();
        var housekeeping = Task.Run(() => new DeliveryHousekeeping(store, db, o, clock, logger).RunAsync(run), CancellationToken.None);
        try
        {
            var claimer = new RecipientClaimer(store, db, memberCenter, hasher, o, limits, sender.Verified ? sender.Domain : null, clock, logger);
            await claimer.RunAsync(run, channel.Writer, progress is null ? null : progress.NextPageAsync);
        }
        catch (OperationCanceledException) when (run.Stop.IsCancellationRequested)
        {
            // Shutdown, cancellation, pause or a worker's failure; handled below.
        }
        finally
        {
            channel.Writer.TryComplete();
            await Task.WhenAll(workers);
            await ledger.DisposeAsync();
            await ReturnUnmarkedAsync(run);
            await run.Stop.CancelAsync();
            await housekeeping;
            await store.ReleaseRunnerAsync(jobId);
            await DeliveryHousekeeping.AddRefusedMailboxesAsync(db, jobId, clock, logger, run.RefusedCheckedTo, long.MaxValue, CancellationToken.None);
        }

        if (run.PauseRequest is { } pause)
        {
            await PauseAsync(jobId, pause.Reason, pause.NeedsOperator);
        }
        else if (run.WorkerError is NpgsqlException or TimeoutException)
        {
            // The database failed: Hangfire runs the job again (the worker's row in 'sending', if its result was lost,
            // becomes 'unknown' when its lease expires).
            throw new InvalidOperationException($"Send job {jobId}: the database failed during delivery; the runner stopped and will be retried.", run.WorkerError);
        }
        else if (run.WorkerError is { } bug)
        {
            await store.FailAsync(jobId, $"internal error in delivery ({bug.GetType().Name}: {bug.Message}); resume the job to deliver the rest", CancellationToken.None);
        }
        else if (!cancellationToken.IsCancellationRequested && await store.CompleteIfDoneAsync(jobId, CancellationToken.None))
        {
            LogCompleted(logger, jobId, run.Sent, run.Failed, run.Unknown,
                (GC.GetTotalAllocatedBytes() - allocatedAtStart) / Math.Max(1, run.Sent + run.Failed + run.Unknown));
        }
        // On shutdown Hangfire must see the job as aborted, not succeeded, so it runs again on the next start.
        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// List-Id (RFC 2919: the list's id under the sender domain, so receivers group and filter the list's mail) and
    /// Feedback-ID (Gmail's feedback loop: campaign, customer, mail type, sender; complaints are reported per field).
    /// </summary>
    public static MessageHeader[] BulkHeaders(DeliveryJob job, string domain, string feedbackSenderId) =>
    [
        new("List-Id", $"<{job.ListId:N}.{domain}>"),
        new("Feedback-ID", $"{job.Id:N}:{job.TenantId:N}:bulk:{feedbackSenderId}"),
    ];

    /// <summary>
    /// Rows the run read and never marked (left in the channel by a stopping run, or dropped on the way to their mark)
    /// give their sending-limit reservations back.
    /// </summary>
    private async Task ReturnUnmarkedAsync(DeliveryRun run)
    {
        var left = run.Reservations.TakeUnmarked();
        if (left.Length == 0)
        {
            return;
        }
        try
        {
            await using var conn = await db.OpenConnectionAsync(CancellationToken.None);
            await Features.Reputation.LimitReservations.ReturnAsync(conn, left, CancellationToken.None);
        }
        catch (NpgsqlException)
        {
            // The database is down: the counts stay (the limit is reached a little early, never passed).
        }
    }

    /// <summary>Pauses the job (<see cref="RecipientStore.PauseAsync"/>); <see cref="RunAsync"/> resumes it at its time.</summary>
    private Task PauseAsync(Guid jobId, string reason, bool needsOperator) =>
        store.PauseAsync(jobId, reason, needsOperator, jobOptions.Value, CancellationToken.None);

    private static TokenBucketRateLimiter CreateLimiter(double perSecond)
    {
        // Refill every 50 ms so the rate is smooth; the bucket holds at most 50 ms worth (at least one token).
        var perPeriod = Math.Max(1, (int)Math.Round(perSecond / 20));
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = perPeriod,
            TokensPerPeriod = perPeriod,
            ReplenishmentPeriod = TimeSpan.FromSeconds(perPeriod / perSecond),
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: runner {RunnerId} delivering with {Concurrency} connections")]
    private static partial void LogDeliveryStarting(ILogger logger, Guid jobId, Guid runnerId, int concurrency);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: first message: {Timeline}")]
    private static partial void LogStartTimeline(ILogger logger, Guid jobId, string timeline);

    [LoggerMessage(LogLevel.Information, "Send job {JobId} completed: {Sent} sent, {Failed} failed, {Unknown} unknown by this runner; {AllocatedPerMessage} bytes allocated per message (process-wide)")]
    private static partial void LogCompleted(ILogger logger, Guid jobId, int sent, int failed, int unknown, long allocatedPerMessage);

}
