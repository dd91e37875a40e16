using Newsletter.ServiceDefaults.Privacy;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using MimeKit.Cryptography;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Composition;
using SendEngine.Data;
using SendEngine.Features.SenderDomains;
using SendEngine.Features.Suppressions;
using SendEngine.Transports;

namespace SendEngine.Features.Transactional;

/// <summary>
/// Delivers due transactional tasks: a <see cref="BatchLoop"/> (several per process) that claims tasks with
/// SKIP LOCKED and a lease (<see cref="TransactionalTaskStore"/>), re-checks suppressions, marks each task sending
/// before the transport is called, and records the outcome the way the bulk path does: a transient refusal is retried
/// up to MaxRetries times, an unanswered hand-over is unknown and never retried, an unavailable transport is not an
/// attempt. Scheduled tasks simply become due at send_at.
/// </summary>
public sealed partial class TransactionalDispatcher(
    TransactionalTaskStore store,
    NpgsqlDataSource db,
    TransportResolver transports,
    AddressHasher hasher,
    IOptions<TransactionalOptions> options,
    SenderSigning senders,
    ReturnPath returnPath,
    IOptions<SenderDomainOptions> senderDomainOptions,
    TransactionalJson json,
    WakeSignal<TransactionalDispatcher> signal,
    TimeProvider clock,
    ILogger<TransactionalDispatcher> logger) : BatchLoop(signal, clock)
{
    protected override bool Enabled => options.Value.Dispatchers > 0;
    protected override int Workers => options.Value.Dispatchers;
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => options.Value.BatchSize;

    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex.GetType().Name, ex.Message);

    protected override async Task<int> RunBatchAsync(CancellationToken ct)
    {
        var o = options.Value;
        var touched = new HashSet<Guid>(await RecoverExpiredIfDueAsync(o, ct));
        await DisposeIdleSessionsIfDueAsync(o);
        // A batch is up to BatchSize tasks claimed a group at a time, each group straight into sending (its durable
        // record that the attempts started, one statement: the lease of each task's queue row, a HOT update), then its
        // results recorded (the queue rows deleted, the task rows written once); the SMTP sessions stay open across the
        // batch's groups, and are kept for the next batches (SessionIdleTimeout).
        var sessions = new Dictionary<Guid, BatchSession?>();
        var total = 0;
        var finished = false;
        try
        {
            while (total < o.BatchSize && !ct.IsCancellationRequested)
            {
                var want = Math.Min(o.GroupSize, o.BatchSize - total);
                var claimed = await store.ClaimAsync(want, o.Lease, ct);
                total += claimed.Count;
                if (claimed.Count > 0)
                {
                    var started = new HashSet<Guid>();
                    try
                    {
                        await DeliverAsync(claimed, touched, sessions, started, ct);
                    }
                    catch (Exception) when (claimed.Any(t => !started.Contains(t.Id)))
                    {
                        // Stopped or failed before some tasks were handed to the transport: those go back to the queue
                        // (never attempted) rather than waiting for the lease to end as unknown. Best effort: if this
                        // fails too, the lease still ends and they become unknown, never sent twice.
                        await TryReleaseAsync([.. claimed.Where(t => !started.Contains(t.Id)).Select(t => t.Id)]);
                        throw;
                    }
                }
                if (claimed.Count < want)
                {
                    break;
                }
            }
            finished = true;
        }
        finally
        {
            foreach (var session in sessions.Values)
            {
                if (session is null)
                {
                    continue;
                }
                // A batch that failed midway leaves its sessions in a state nobody checked: closed, not kept.
                if (!finished || !KeepIdle(session))
                {
                    await session.Session.DisposeAsync();
                }
            }
        }
        await store.CompleteRequestsAsync([.. touched], ct);
        return total;
    }

    /// <summary>
    /// Leases that ran out, looked for at most once per poll interval by all of this process's dispatchers together
    /// rather than at every batch: under a steady trickle a batch is a task or two, and this statement was one of its six.
    /// A lease is at least 5 s, so recovery comes at most a poll interval later than it could.
    /// </summary>
    private async Task<List<Guid>> RecoverExpiredIfDueAsync(TransactionalOptions o, CancellationToken ct)
    {
        var now = Clock.GetUtcNow().UtcTicks;
        var due = Interlocked.Read(ref _nextRecovery);
        if (now < due || Interlocked.CompareExchange(ref _nextRecovery, now + o.PollInterval.Ticks, due) != due)
        {
            return [];
        }
        return await store.RecoverExpiredAsync(ct);
    }

    /// <summary>When the next batch looks for expired leases (UTC ticks; shared by the workers).</summary>
    private long _nextRecovery;

    /// <summary>
    /// MIME rendering state shared by the requests of a signer (SenderSigning caches signers per tenant and domain), and
    /// by unsigned ones: the From and Reply-To fields formatted once while they repeat, not once per one-recipient request.
    /// </summary>
    private readonly ConditionalWeakTable<DkimSigner, MimeRendering> _renderings = new();

    private readonly MimeRendering _unsigned = new(null, wire: true);

    /// <summary>
    /// Delivers one claimed group (all in sending) through the batch's <paramref name="sessions"/> (per tenant; null once
    /// its transport was found down in this batch: its tasks go back at once).
    /// </summary>
    /// <param name="started">Filled with each task just before it goes to the transport.</param>
    private async Task DeliverAsync(List<ClaimedTask> claimed, HashSet<Guid> touched, Dictionary<Guid, BatchSession?> sessions,
        HashSet<Guid> started, CancellationToken ct)
    {
        var o = options.Value;
        var (composers, unverified) = await ComposersAsync(claimed.Where(c => c.RequestMessage is not null).Select(c => (c.RequestId, c.TenantId, c.RequestMessage!)), ct);
        foreach (var tenant in claimed.GroupBy(c => c.TenantId))
        {
            var tasks = tenant.ToList();
            // An address suppressed since the request (a bounce of an earlier message, scheduled sends) is not mailed.
            Dictionary<string, string> suppressed;
            await using (var conn = await db.OpenConnectionAsync(ct))
            {
                suppressed = await SuppressionStore.FindAsync(conn, hasher, tenant.Key, tasks.Select(t => t.EmailKey).Distinct().ToArray(), ct);
            }
            var sendable = new List<ClaimedTask>(tasks.Count);
            foreach (var t in tasks)
            {
                touched.Add(t.RequestId);
                if (suppressed.TryGetValue(t.EmailKey, out var reason))
                {
                    await store.RecordRejectedAsync(t.Id, RejectReasonOf(reason), "suppressed: " + reason, attempted: false, ct);
                }
                else if (unverified.TryGetValue(t.RequestId, out var domain))
                {
                    // Checked again at dispatch: a domain removed or no longer verified since the request sends nothing more.
                    await store.RecordRejectedAsync(t.Id, EmailRejectReasons.InvalidSender, $"the sender domain {domain} is not a verified sender domain of the tenant",
                        attempted: false, ct);
                }
                else if (!composers.ContainsKey(t.RequestId))
                {
                    await store.RecordRejectedAsync(t.Id, EmailRejectReasons.Invalid, "the request's message could not be read", attempted: false, ct);
                }
                else
                {
                    sendable.Add(t);
                }
            }
            if (sendable.Count == 0)
            {
                continue;
            }
            if (!sessions.TryGetValue(tenant.Key, out var session))
            {
                sessions[tenant.Key] = session = RentSession(await transports.ForAsync(tenant.Key, ct));
            }
            if (session is null)
            {
                await GiveBackAsync(sendable, "the transport was unavailable earlier in this batch", ct);
                continue;
            }
            // The group shares its commits: claimed into sending in one statement, its sent results recorded in one.
            var sent = new List<SentTask>(sendable.Count);
            for (var i = 0; i < sendable.Count; i++)
            {
                var t = sendable[i];
                started.Add(t.Id);
                var (messageId, result) = await SendOneAsync(composers[t.RequestId], t, session.Session);
                if (result.Outcome == DeliveryOutcome.Unavailable && session.Kept && !session.Used)
                {
                    // A session kept from an earlier batch whose connection the server closed meanwhile (its idle timeout, a
                    // restart): nothing was handed over, so the task goes once more on a new connection rather than waiting
                    // OutageRetryDelay as if the relay were down.
                    await session.Session.DisposeAsync();
                    sessions[tenant.Key] = session = new BatchSession(session.Transport, session.Transport.OpenSession(), Kept: false);
                    (messageId, result) = await SendOneAsync(composers[t.RequestId], t, session.Session);
                }
                session.Used = true;
                if (result.Outcome is DeliveryOutcome.Unavailable or DeliveryOutcome.Misconfigured)
                {
                    // Nothing was handed over: not an attempt. This tenant's remaining tasks wait for the transport too.
                    LogTransportDown(logger, tenant.Key, result.Outcome.ToString(), result.Detail);
                    touched.ExceptWith(await store.RecordSentAsync(sent, CancellationToken.None));
                    await GiveBackAsync(sendable.Skip(i).ToList(), result.Detail, ct);
                    sent.Clear();
                    await session.Session.DisposeAsync();
                    sessions[tenant.Key] = null;
                    break;
                }
                if (result.Outcome == DeliveryOutcome.Sent)
                {
                    sent.Add(new SentTask(t.Id, result.ProviderMessageId ?? messageId!, result.Detail, Clock.GetUtcNow()));
                }
                else
                {
                    await RecordAsync(t, messageId, result, ct);
                }
            }
            touched.ExceptWith(await store.RecordSentAsync(sent, CancellationToken.None));
        }
    }

    /// <summary>A batch's session with a tenant's transport; <see cref="Kept"/>: taken from the idle sessions of earlier batches.</summary>
    private sealed record BatchSession(ITransport Transport, ITransportSession Session, bool Kept)
    {
        /// <summary>A message went through it in this batch (its connection was alive then).</summary>
        public bool Used { get; set; }
    }

    /// <summary>A session a batch finished with, kept for the next batches of any dispatcher of this process.</summary>
    private sealed record IdleSession(ITransport Transport, ITransportSession Session, long IdleSince);

    /// <summary>
    /// Sessions between batches, by transport (a tenant's own credential is its own transport instance, so a changed
    /// credential is not served by the old one's connections). Under a steady trickle each batch is a task or two, and a
    /// connection per batch (connect, greeting, EHLO, QUIT) cost more round trips than its messages.
    /// </summary>
    private readonly List<IdleSession> _idle = [];

    /// <summary>When idle sessions are next looked through for expired ones (UTC ticks; shared by the workers).</summary>
    private long _nextIdleSweep;

    private BatchSession RentSession(ITransport transport)
    {
        var now = Clock.GetUtcNow().UtcTicks;
        var maxIdle = options.Value.SessionIdleTimeout.Ticks;
        lock (_idle)
        {
            // The most recently used first: the likeliest to be alive; expired ones are left to the sweep.
            for (var i = _idle.Count - 1; i >= 0; i--)
            {
                var s = _idle[i];
                if (ReferenceEquals(s.Transport, transport) && now - s.IdleSince < maxIdle)
                {
                    _idle.RemoveAt(i);
                    return new BatchSession(transport, s.Session, Kept: true);
                }
            }
        }
        return new BatchSession(transport, transport.OpenSession(), Kept: false);
    }

    /// <summary>Keeps a finished batch's session for the next ones; false when sessions are not kept (it is then closed).</summary>
    private bool KeepIdle(BatchSession session)
    {
        if (options.Value.SessionIdleTimeout <= TimeSpan.Zero)
        {
            return false;
        }
        lock (_idle)
        {
            _idle.Add(new IdleSession(session.Transport, session.Session, Clock.GetUtcNow().UtcTicks));
        }
        return true;
    }

    /// <summary>Closes sessions idle longer than SessionIdleTimeout, at most once per poll interval (all workers together).</summary>
    private async Task DisposeIdleSessionsIfDueAsync(TransactionalOptions o)
    {
        var now = Clock.GetUtcNow().UtcTicks;
        var due = Interlocked.Read(ref _nextIdleSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextIdleSweep, now + o.PollInterval.Ticks, due) != due)
        {
            return;
        }
        List<IdleSession> expired;
        lock (_idle)
        {
            expired = _idle.Where(s => now - s.IdleSince >= o.SessionIdleTimeout.Ticks).ToList();
            _idle.RemoveAll(s => now - s.IdleSince >= o.SessionIdleTimeout.Ticks);
        }
        foreach (var s in expired)
        {
            await s.Session.DisposeAsync();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // The loops end first (a batch returns its sessions when it ends), then every kept connection is closed.
        await base.StopAsync(cancellationToken);
        List<IdleSession> idle;
        lock (_idle)
        {
            idle = [.. _idle];
            _idle.Clear();
        }
        foreach (var s in idle)
        {
            await s.Session.DisposeAsync();
        }
    }

    private async Task TryReleaseAsync(Guid[] ids)
    {
        try
        {
            await store.ReleaseAsync(ids, null, Clock.GetUtcNow(), CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            LogReleaseFailed(logger, ids.Length, ex.Message);
        }
    }

    private static async Task<(string? MessageId, DeliveryResult Result)> SendOneAsync(TransactionalComposer composer, ClaimedTask t, ITransportSession session)
    {
        OutgoingMessage message;
        try
        {
            message = composer.Compose(t.Email, t.EmailKey, t.Name, t.Id, t.MessageId);
        }
        catch (Exception ex) when (ex is FormatException or MimeKit.ParseException or ArgumentException)
        {
            return (null, new DeliveryResult(DeliveryOutcome.Rejected, "invalid message: " + ex.Message));
        }
        // Not cancelled by shutdown: the transaction in flight completes and is recorded.
        return (message.MessageId, await session.SendAsync(message, CancellationToken.None));
    }

    private async Task RecordAsync(ClaimedTask t, string? messageId, DeliveryResult result, CancellationToken ct)
    {
        var o = options.Value;
        switch (result.Outcome)
        {
            case DeliveryOutcome.Sent:
                await store.RecordSentAsync([new SentTask(t.Id, result.ProviderMessageId ?? messageId!, result.Detail, Clock.GetUtcNow())], CancellationToken.None);
                break;
            case DeliveryOutcome.Unknown:
                await store.RecordUnknownAsync(t.Id, result.ProviderMessageId ?? messageId, result.Detail, CancellationToken.None);
                break;
            case DeliveryOutcome.Deferred when t.Attempts < o.MaxRetries:
                var delay = TimeSpan.FromTicks(Math.Min(o.RetryBaseDelay.Ticks * (1L << Math.Min(t.Attempts, 16)), TimeSpan.FromHours(1).Ticks));
                await store.RecordDeferredAsync(t.Id, result.Detail, Clock.GetUtcNow() + delay, CancellationToken.None);
                break;
            case DeliveryOutcome.Deferred:
                await store.RecordRejectedAsync(t.Id, EmailRejectReasons.SoftBounce, $"{result.Detail} (after {o.MaxRetries} retries)", attempted: true, CancellationToken.None);
                break;
            default:
                // A refused mailbox (5.1.x, 5.2.1) is a hard bounce and joins the tenant's suppressions, as in bulk jobs:
                // suppressed first, so that once the task shows rejected a new request to the address is refused at once.
                var mailbox = MailboxRejected().IsMatch(result.Detail);
                if (mailbox)
                {
                    await SuppressRefusedAsync(t, CancellationToken.None);
                }
                await store.RecordRejectedAsync(t.Id, mailbox ? EmailRejectReasons.HardBounce : EmailRejectReasons.Rule, result.Detail,
                    attempted: true, CancellationToken.None);
                break;
        }
    }

    private async Task SuppressRefusedAsync(ClaimedTask t, CancellationToken ct)
    {
        var now = Clock.GetUtcNow();
        await Sql.ExecuteAsync(db, $"""
            WITH added AS (
                INSERT INTO suppressions (tenant_id, email, reason, source, created_at)
                VALUES ($1, $2, '{SuppressionReasons.HardBounce}', '{SuppressionStore.SourceDelivery}', $3)
                ON CONFLICT (tenant_id, email) DO NOTHING
                RETURNING tenant_id, email)
            INSERT INTO member_center_reports (tenant_id, email, reason, list_id, occurred_at, created_at, attempts, next_attempt_at)
            SELECT tenant_id, email, '{SuppressionReasons.HardBounce}', NULL, $3, $3, 0, $3 FROM added
            """, ct, t.TenantId, t.EmailKey, now);
    }

    /// <summary>Back to the queue after an outage, or rejected (soft-bounce) once the outage outlasted GiveUpAfter.</summary>
    private async Task GiveBackAsync(List<ClaimedTask> tasks, string detail, CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        var expired = tasks.Where(t => now - t.DueAt >= o.GiveUpAfter).ToList();
        foreach (var t in expired)
        {
            await store.RecordRejectedAsync(t.Id, EmailRejectReasons.SoftBounce, $"the transport stayed unavailable for {o.GiveUpAfter}: {detail}",
                attempted: false, CancellationToken.None);
        }
        await store.ReleaseAsync([.. tasks.Except(expired).Select(t => t.Id)], "waiting for the transport: " + detail, now + o.OutageRetryDelay,
            CancellationToken.None);
    }

    /// <summary>
    /// Each request's composer, signing with its sender domain's key (verified domains) or the global one; requests
    /// whose from domain may not send (not registered, or unverified while AllowUnverified is off) are returned apart.
    /// </summary>
    private async Task<(Dictionary<Guid, TransactionalComposer> Composers, Dictionary<Guid, string> Unverified)> ComposersAsync(
        IEnumerable<(Guid Id, Guid TenantId, string Json)> stored, CancellationToken ct)
    {
        // The messages come with the claim (ClaimAsync), read once per request.
        var messages = new List<(Guid Id, Guid TenantId, EmailMessage Message)>();
        foreach (var (id, tenantId, text) in stored)
        {
            try
            {
                var message = JsonSerializer.Deserialize<EmailMessage>(text, json.Stored);
                if (message is not null)
                {
                    messages.Add((id, tenantId, message));
                }
            }
            catch (Exception ex) when (ex is JsonException or FormatException)
            {
                LogUnreadable(logger, id, ex.Message);
            }
        }
        var composers = new Dictionary<Guid, TransactionalComposer>();
        var unverified = new Dictionary<Guid, string>();
        foreach (var (id, tenantId, message) in messages)
        {
            // Cached per tenant and domain: no database round trip per request, let alone per message.
            var sender = await senders.ResolveAsync(tenantId, message.FromEmail, ct);
            if (!sender.Registered || (!sender.Verified && !senders.AllowUnverified))
            {
                unverified[id] = sender.Domain ?? message.FromEmail ?? "";
                continue;
            }
            try
            {
                composers[id] = new TransactionalComposer(message, sender.Dkim,
                    $"{tenantId:N}:transactional:{senderDomainOptions.Value.FeedbackSenderId}",
                    sender.ReturnPathDomain is { } bounceDomain ? taskId => returnPath.ForTask(taskId, bounceDomain) : null,
                    sender.Dkim is { } dkim ? _renderings.GetValue(dkim, d => new MimeRendering(d, wire: true)) : _unsigned);
            }
            catch (FormatException ex)
            {
                LogUnreadable(logger, id, ex.Message);
            }
        }
        return (composers, unverified);
    }

    /// <summary>The seed's reject_reason of a suppression reason.</summary>
    public static string RejectReasonOf(string suppressionReason) => suppressionReason switch
    {
        SuppressionReasons.HardBounce => EmailRejectReasons.HardBounce,
        SuppressionReasons.Complaint => EmailRejectReasons.Spam,
        SuppressionReasons.Unsubscribe => EmailRejectReasons.Unsub,
        _ => EmailRejectReasons.Custom,
    };

    /// <summary><see cref="RejectReasonOf"/> in SQL, of the suppression reason in <paramref name="column"/>.</summary>
    public static string RejectReasonSql(string column) =>
        $"CASE {column} WHEN '{SuppressionReasons.HardBounce}' THEN '{EmailRejectReasons.HardBounce}' WHEN '{SuppressionReasons.Complaint}' THEN '{EmailRejectReasons.Spam}' "
        + $"WHEN '{SuppressionReasons.Unsubscribe}' THEN '{EmailRejectReasons.Unsub}' ELSE '{EmailRejectReasons.Custom}' END";

    [GeneratedRegex(@"^5[0-9][0-9] 5\.(1\.(0|1|2|3|10)|2\.1)([^0-9]|$)")]
    private static partial Regex MailboxRejected();

    [LoggerMessage(LogLevel.Warning, "Transactional dispatch: {Count} claimed tasks could not be given back ({Error}); they become unknown when their lease ends")]
    private static partial void LogReleaseFailed(ILogger logger, int count, string error);

    [LoggerMessage(LogLevel.Warning, "Transactional dispatch failed ({ErrorType}): {Error}")]
    private static partial void LogBatchFailed(ILogger logger, string errorType, string error);

    [LoggerMessage(LogLevel.Warning, "Transactional mail of tenant {TenantId}: transport {Outcome}: {Detail}; its tasks wait")]
    private static partial void LogTransportDown(ILogger logger, Guid tenantId, string outcome, string detail);

    [LoggerMessage(LogLevel.Error, "Transactional request {RequestId}: the stored message could not be read: {Error}")]
    private static partial void LogUnreadable(ILogger logger, Guid requestId, string error);
}
