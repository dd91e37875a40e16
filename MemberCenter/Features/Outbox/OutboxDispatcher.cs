using System.ComponentModel.DataAnnotations;
using MailKit.Net.Smtp;
using MemberCenter.Data;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;

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

    /// <summary>After this many failed attempts a message is given up (kept, with its last error).</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 12;

    /// <summary>How long a claimed row is reserved for the dispatcher that claimed it; a crash frees it after this.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>
/// Sends confirmation mail from the outbox. Rows are claimed with SKIP LOCKED and a lease, so several Member Center
/// replicas share the work and a crash only delays a row. At-least-once: a crash after the SMTP server accepted a
/// message but before the row is marked sends it again, which for a confirmation mail is harmless.
/// </summary>
public sealed partial class OutboxDispatcher(
    IServiceScopeFactory scopes,
    OutboxSignal signal,
    IOptions<OutboxOptions> options,
    IOptions<SmtpOptions> smtpOptions,
    TimeProvider clock,
    ILogger<OutboxDispatcher> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, options.Value.Concurrency).Select(_ => Task.Run(() => LoopAsync(stoppingToken), stoppingToken)));

    private async Task LoopAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var worked = 0;
            try
            {
                worked = await DispatchBatchAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogBatchFailed(logger, ex);
            }
            if (worked == options.Value.BatchSize)
            {
                // A full batch means a backlog: wake a sleeping sibling loop to share it.
                signal.Notify();
            }
            else
            {
                try
                {
                    await signal.WaitAsync(options.Value.PollInterval, stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Claims and sends one batch; returns how many rows it claimed.</summary>
    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        var o = options.Value;
        var now = clock.GetUtcNow();
        var leaseUntil = now + o.Lease;
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
            await FailAsync(db, message, message.LastError ?? $"Gave up after {o.MaxAttempts} attempts.", ct);
        }
        claimed = claimed.Where(m => m.Attempts <= o.MaxAttempts).ToList();
        var composer = scope.ServiceProvider.GetRequiredService<ConfirmationMailComposer>();
        var (mails, failures) = await composer.ComposeAsync(claimed.Select(m => m.SubscriptionId).Distinct().ToArray(), ct);
        var done = new List<long>(claimed.Count);
        var sentAt = new List<long>(claimed.Count);
        SmtpClient? smtp = null;
        try
        {
            foreach (var message in claimed.OrderBy(m => m.Id))
            {
                if (failures.TryGetValue(message.SubscriptionId, out var failure))
                {
                    LogSendFailed(logger, message.Id, message.Attempts, failure);
                    await FailAsync(db, message, failure, ct);
                    continue;
                }
                if (!mails.Remove(message.SubscriptionId, out var mail))
                {
                    // Confirmed or left meanwhile (or a duplicate row): nothing to send.
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
                    await FailAsync(db, message, error, ct);
                }
            }
        }
        finally
        {
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
            var finished = clock.GetUtcNow();
            await db.OutboxMessages.Where(m => sentAt.Contains(m.Id)).ExecuteUpdateAsync(u => u
                .SetProperty(m => m.CompletedAt, finished).SetProperty(m => m.SentAt, finished).SetProperty(m => m.LastError, (string?)null), CancellationToken.None);
            await db.OutboxMessages.Where(m => done.Contains(m.Id)).ExecuteUpdateAsync(u => u
                .SetProperty(m => m.CompletedAt, finished).SetProperty(m => m.LastError, (string?)null), CancellationToken.None);
        }
        return claimed.Count;
    }

    private async Task FailAsync(MemberCenterDbContext db, OutboxMessage message, string error, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var givenUp = message.Attempts >= options.Value.MaxAttempts;
        // Exponential backoff: 10 s, 20 s, 40 s ... capped at 30 minutes.
        var delay = TimeSpan.FromSeconds(Math.Min(10 * Math.Pow(2, message.Attempts - 1), 1800));
        var truncated = error.Length > 1000 ? error[..1000] : error;
        await db.OutboxMessages.Where(m => m.Id == message.Id).ExecuteUpdateAsync(u => u
            .SetProperty(m => m.NextAttemptAt, now + delay)
            .SetProperty(m => m.CompletedAt, givenUp ? now : null)
            .SetProperty(m => m.LastError, truncated), ct);
    }

    [LoggerMessage(LogLevel.Warning, "Outbox message {MessageId} failed on attempt {Attempt}: {Error}")]
    private static partial void LogSendFailed(ILogger logger, long messageId, int attempt, string error);

    [LoggerMessage(LogLevel.Error, "Outbox batch failed")]
    private static partial void LogBatchFailed(ILogger logger, Exception ex);
}
