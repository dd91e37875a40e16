using System.ComponentModel.DataAnnotations;
using MailKit.Net.Smtp;
using MemberCenter.Data;
using MemberCenter.Features.People;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Mail;
using Npgsql;

namespace MemberCenter.Features.Outbox;

public sealed class OutboxOptions
{
    public const string Section = "Outbox";

    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    [Range(1, 500)]
    public int BatchSize { get; set; } = 50;

    /// <summary>Dispatch loops in this process, each with its own SMTP connection.</summary>
    [Range(1, 32)]
    public int Concurrency { get; set; } = 4;

    /// <summary>
    /// After this many attempts that failed for the message itself (it cannot be composed, or the SMTP server refused
    /// its recipient or content with a 5xx) a message is given up (kept, with its last error). An SMTP server that is
    /// down or answers 4xx uses up no attempts: such a message is retried until Newsletter__ConfirmTokenLifetime after
    /// the subscribe, when the pending subscription's own confirm token has expired too.
    /// </summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 12;

    /// <summary>
    /// How long a claimed row is reserved for the dispatcher that claimed it; a crash frees it after this. The
    /// dispatcher renews it every third of it while its batch sends, however long the SMTP server takes.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>
/// Sends confirmation mail from the outbox. Rows are claimed with SKIP LOCKED and a lease, so several Member Center
/// replicas share the work and a crash only delays a row. At-least-once: a crash after the SMTP server accepted a
/// message but before the row is marked sends it again, which for a confirmation mail is harmless. The lease is renewed
/// while a batch sends, so a slow or silent SMTP server (up to Smtp:DataTimeout per message) cannot let a second
/// dispatcher claim, and send again, rows this one is still sending.
/// </summary>
public sealed partial class OutboxDispatcher(
    IServiceScopeFactory scopes,
    NpgsqlDataSource dataSource,
    WakeSignal<OutboxDispatcher> signal,
    IOptions<OutboxOptions> options,
    IOptions<SmtpOptions> smtpOptions,
    IOptions<NewsletterOptions> newsletter,
    TimeProvider clock,
    ILogger<OutboxDispatcher> logger) : BatchLoop(signal, clock)
{
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => options.Value.BatchSize;
    // Each worker has its own SMTP connection; a full batch wakes a sleeping one to share the backlog.
    protected override int Workers => options.Value.Concurrency;

    protected override Task<int> RunBatchAsync(CancellationToken ct) => DispatchBatchAsync(ct);

    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex);

    /// <summary>Claims and sends one batch; returns how many rows it claimed.</summary>
    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        var o = options.Value;
        var now = Clock.GetUtcNow();
        var leaseUntil = Microseconds(now + o.Lease);
        var claimed = await db.OutboxMessages.FromSql($"""
            UPDATE outbox_messages SET next_attempt_at = {leaseUntil}, attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM outbox_messages
                WHERE completed_at IS NULL AND next_attempt_at <= {now}
                ORDER BY next_attempt_at, id
                LIMIT {o.BatchSize}
                FOR UPDATE SKIP LOCKED)
            RETURNING *
            """).AsNoTracking().ToListAsync(ct);
        if (claimed.Count == 0)
        {
            return 0;
        }

        // Rows whose batches kept failing before any send (composing them threw) end here instead of forever.
        foreach (var message in claimed.Where(m => m.Attempts > o.MaxAttempts))
        {
            await FailAsync(db, message, message.LastError ?? $"Gave up after {o.MaxAttempts} attempts.", transient: false, ct);
        }
        claimed = claimed.Where(m => m.Attempts <= o.MaxAttempts).ToList();
        var composer = scope.ServiceProvider.GetRequiredService<ConfirmationMailComposer>();
        var subscriptionRows = claimed.Where(m => m.SubscriptionId is not null).ToList();
        var (mails, failures) = subscriptionRows.Count == 0
            ? ([], [])
            : await composer.ComposeAsync(subscriptionRows.Select(m => m.SubscriptionId!.Value).Distinct().ToArray(),
                subscriptionRows.Where(m => m.Language is not null).GroupBy(m => m.SubscriptionId!.Value).ToDictionary(g => g.Key, g => g.Last().Language!), ct);
        var accountRows = claimed.Where(m => m.SubscriptionId is null).ToList();
        var (accountMails, accountFailures) = accountRows.Count == 0
            ? ([], [])
            : await scope.ServiceProvider.GetRequiredService<AccountMailComposer>().ComposeAsync(accountRows, ct);
        var done = new List<long>(claimed.Count);
        var sentAt = new List<long>(claimed.Count);
        var lease = new Lease(leaseUntil);
        using var stopRenewing = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var renewing = RenewLeaseAsync(claimed.Select(m => m.Id).ToArray(), lease, stopRenewing.Token);
        SmtpClient? smtp = null;
        try
        {
            foreach (var message in claimed.OrderBy(m => m.Id))
            {
                if (Clock.GetUtcNow() >= lease.Until)
                {
                    // Renewal failed (the database is unreachable): another dispatcher may own the rest by now.
                    LogLeaseLost(logger);
                    break;
                }
                if (message.SubscriptionId is { } sid ? failures.TryGetValue(sid, out var failure) : accountFailures.TryGetValue(message.Id, out failure))
                {
                    LogSendFailed(logger, message.Id, message.Attempts, failure);
                    await FailAsync(db, message, failure, transient: false, ct);
                    continue;
                }
                if (!(message.SubscriptionId is { } id ? mails.Remove(id, out var mail) : accountMails.Remove(message.Id, out mail)))
                {
                    // Confirmed or left meanwhile, an accepted invitation, a deleted account (or a duplicate row): nothing to send.
                    done.Add(message.Id);
                    continue;
                }
                try
                {
                    smtp ??= await SmtpConnector.ConnectAsync(smtpOptions.Value, ct);
                    await smtp.SendAsync(mail, ct);
                    sentAt.Add(message.Id);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    var error = ex.GetType().Name + ": " + ex.Message;
                    LogSendFailed(logger, message.Id, message.Attempts, error);
                    smtp?.Dispose();
                    smtp = null;
                    await FailAsync(db, message, error, transient: !RefusesTheMessage(ex), ct);
                }
            }
        }
        finally
        {
            await stopRenewing.CancelAsync();
            await renewing;
            if (smtp is not null)
            {
                try
                {
                    await smtp.DisconnectAsync(quit: true, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The mail went out; a failed QUIT is not worth a retry.
                }
                smtp.Dispose();
            }
            // Even when cancelled: what the SMTP server accepted must not be sent again.
            var finished = Clock.GetUtcNow();
            await db.OutboxMessages.Where(m => sentAt.Contains(m.Id)).ExecuteUpdateAsync(u => u
                .SetProperty(m => m.CompletedAt, finished).SetProperty(m => m.SentAt, finished).SetProperty(m => m.LastError, (string?)null), CancellationToken.None);
            await db.OutboxMessages.Where(m => done.Contains(m.Id)).ExecuteUpdateAsync(u => u
                .SetProperty(m => m.CompletedAt, finished).SetProperty(m => m.LastError, (string?)null), CancellationToken.None);
        }
        return claimed.Count;
    }

    /// <summary>The batch's lease, moved by the renewal task and read by the send loop.</summary>
    private sealed class Lease(DateTimeOffset until)
    {
        private long _utcTicks = until.UtcTicks;

        public DateTimeOffset Until
        {
            get => new(Interlocked.Read(ref _utcTicks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref _utcTicks, value.UtcTicks);
        }
    }

    // PostgreSQL keeps microseconds: the lease is compared for equality with what was stored.
    private static DateTimeOffset Microseconds(DateTimeOffset t) => t.AddTicks(-(t.UtcTicks % 10));

    /// <summary>
    /// Every third of the lease, moves the lease of this batch's rows that still carry it (not yet failed, not
    /// recorded as sent or done) forward. The lease value itself marks the rows as this batch's: a row another
    /// dispatcher has claimed, or that FailAsync rescheduled, carries another value and is left alone. Rows sent but not
    /// yet recorded keep being renewed, so they are never claimed again before the batch records them.
    /// </summary>
    private async Task RenewLeaseAsync(long[] ids, Lease lease, CancellationToken ct)
    {
        var o = options.Value;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(o.Lease / 3, Clock, ct);
                var next = Microseconds(Clock.GetUtcNow() + o.Lease);
                await using var cmd = dataSource.CreateCommand("""
                    UPDATE outbox_messages SET next_attempt_at = $1
                    WHERE id = ANY($2) AND completed_at IS NULL AND next_attempt_at = $3
                    """);
                cmd.Parameters.Add(new NpgsqlParameter { Value = next });
                cmd.Parameters.Add(new NpgsqlParameter { Value = ids });
                cmd.Parameters.Add(new NpgsqlParameter { Value = lease.Until });
                await cmd.ExecuteNonQueryAsync(ct);
                lease.Until = next;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                // Never ends the task with an error: the batch must still record what it sent. Tried again at the
                // next third; the send loop stops once the lease has run out.
                LogLeaseRenewalFailed(logger, ex.Message);
            }
        }
    }

    /// <summary>A 5xx answer to this message's recipient or content: sending it again would get the same answer.</summary>
    private static bool RefusesTheMessage(Exception ex) =>
        ex is SmtpCommandException { ErrorCode: SmtpErrorCode.RecipientNotAccepted or SmtpErrorCode.MessageNotAccepted } refused
        && (int)refused.StatusCode >= 500;

    private async Task FailAsync(MemberCenterDbContext db, OutboxMessage message, string error, bool transient, CancellationToken ct)
    {
        var now = Clock.GetUtcNow();
        var age = now - message.CreatedAt;
        var givenUp = transient ? age >= newsletter.Value.ConfirmTokenLifetime : message.Attempts >= options.Value.MaxAttempts;
        // Backoff capped at 30 minutes: exponential in the attempts (10 s, 20 s, 40 s ...), and for an outage, which
        // uses up no attempts, a quarter of the time the message has waited so far (10 s at first, 30 min after 2 h).
        var delay = TimeSpan.FromSeconds(Math.Min(transient ? Math.Max(10, age.TotalSeconds / 4) : 10 * Math.Pow(2, message.Attempts - 1), 1800));
        var truncated = error.Length > 1000 ? error[..1000] : error;
        // The claim counted an attempt; an outage gives it back, so that it never ends in "out of attempts".
        var attempts = transient ? message.Attempts - 1 : message.Attempts;
        await db.OutboxMessages.Where(m => m.Id == message.Id).ExecuteUpdateAsync(u => u
            .SetProperty(m => m.NextAttemptAt, now + delay)
            .SetProperty(m => m.Attempts, attempts)
            .SetProperty(m => m.CompletedAt, givenUp ? now : null)
            .SetProperty(m => m.LastError, truncated), ct);
    }

    [LoggerMessage(LogLevel.Warning, "Outbox message {MessageId} failed on attempt {Attempt}: {Error}")]
    private static partial void LogSendFailed(ILogger logger, long messageId, int attempt, string error);

    [LoggerMessage(LogLevel.Warning, "Outbox lease renewal failed: {Error}")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, string error);

    [LoggerMessage(LogLevel.Warning, "Outbox lease lost; the rest of the batch is left for another dispatcher")]
    private static partial void LogLeaseLost(ILogger logger);

    [LoggerMessage(LogLevel.Error, "Outbox batch failed")]
    private static partial void LogBatchFailed(ILogger logger, Exception ex);
}
