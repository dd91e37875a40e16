using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;
using Npgsql;
using SendEngine.Composition;
using SendEngine.Data;
using SendEngine.Features.EmailEvents;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>What became of one mailbox message.</summary>
public enum BounceOutcome
{
    /// <summary>Events stored (or found already stored): moved to the processed folder.</summary>
    Processed,
    /// <summary>A report that raises no event (delayed DSN, feedback type other than abuse): moved to the processed folder.</summary>
    Ignored,
    /// <summary>A report naming no message we sent (or another tenant's): moved to the processed folder, counted.</summary>
    Unmatched,
    /// <summary>Not a DSN or ARF report: moved to the unparsable folder with the reason.</summary>
    Unparsable,
}

public sealed record BounceDecision(BounceOutcome Outcome, string? Reason, int Events);

/// <summary>Where one mailbox's events may point: its tenant's messages only (a tenant mailbox), or any (the platform's).</summary>
public sealed record MailboxIdentity(string Key, Guid? TenantId)
{
    public const string PlatformKey = "platform";
    public string Kind => TenantId is null ? "platform" : "tenant";
}

/// <summary>
/// Turns one mailbox message into email events: parses it (<see cref="BounceParser"/>), finds the message it reports
/// on — the VERP return path it was sent back to (<see cref="ReturnPath"/>), else the quoted original's Message-ID —
/// and stores one event per failed recipient through <see cref="EmailEventWriter"/>, so the processor applies it as it
/// applies webhook events. The idempotency key comes from the report's Message-ID (else mailbox, UIDVALIDITY and UID),
/// so reading the message again stores nothing twice. Also keeps the per-mailbox counters and problem rows.
/// </summary>
public sealed class BounceMessageHandler(NpgsqlDataSource db, EmailEventWriter writer, ReturnPath returnPath, TimeProvider clock)
{
    private sealed record Target(string MessageId, string Email, Guid TenantId);

    /// <summary>Parses, correlates and stores; throws when the events could not be stored (the message is retried).</summary>
    public async Task<BounceDecision> HandleAsync(MailboxIdentity mailbox, long uidValidity, long uid, MimeMessage message, CancellationToken ct)
    {
        var report = BounceParser.Parse(message, out var reason);
        if (report is null)
        {
            return new BounceDecision(BounceOutcome.Unparsable, reason, 0);
        }
        var entries = report.Recipients.Where(r => r.EventType is EmailEventTypes.HardBounce or EmailEventTypes.SoftBounce or EmailEventTypes.SpamReport).ToList();
        if (entries.Count == 0)
        {
            var what = report.Recipients.Any(r => r.EventType == BounceParser.Delayed) ? "delayed DSN (the MTA is still trying)"
                : report.FeedbackType is { } ft ? $"feedback type {ft}" : "no failed recipient";
            return new BounceDecision(BounceOutcome.Ignored, what, 0);
        }

        await using var conn = await db.OpenConnectionAsync(ct);
        var pairs = new List<(BounceRecipient Entry, Target Target)>();
        var verp = await ByReturnPathAsync(conn, report, mailbox, ct);
        if (verp is not null)
        {
            // The VERP address names exactly one message and its recipient: the entry about that address (a forwarded
            // address bounces under another name, so else the first failed entry).
            var key = EmailAddresses.Key(verp.Email);
            var entry = entries.FirstOrDefault(e => e.Email is not null && EmailAddresses.Key(e.Email) == key) ?? entries[0];
            pairs.Add((entry, verp));
        }
        else if (report.OriginalMessageId is { } originalId)
        {
            var rows = await ByMessageIdAsync(conn, originalId, mailbox, ct);
            foreach (var entry in entries)
            {
                // Only the address the report names: quoting a Message-ID must not touch another reader of that message.
                if (entry.Email is not null && rows.FirstOrDefault(r => EmailAddresses.Key(r.Email) == EmailAddresses.Key(entry.Email)) is { } row)
                {
                    pairs.Add((entry, row));
                }
            }
        }
        if (pairs.Count == 0)
        {
            return new BounceDecision(BounceOutcome.Unmatched,
                verp is null && report.OriginalMessageId is null ? "no VERP return path and no quoted Message-ID" : "names no message sent from this platform" + (mailbox.TenantId is null ? "" : " for this tenant"), 0);
        }

        var now = clock.GetUtcNow();
        var occurred = report.OccurredAt is { } at && at >= EmailEventParser.MinTimestamp && at <= now + EmailEventParser.MaxFutureSkew ? at.ToUniversalTime() : now;
        var reportKey = report.ReportMessageId ?? $"{mailbox.Key}/{uidValidity}/{uid}";
        var events = pairs.Select(p => ToEvent(p.Entry, p.Target, report, reportKey, mailbox, uidValidity, uid, message.Subject, occurred))
            .DistinctBy(e => e.IdempotencyKey).ToList();
        // Logged in the webhook gateway like a callback (source imap), with the report's headers; the processor gives the
        // entry its tenant when it applies the events.
        var logEntry = GatewayRecorder.CreateImap(mailbox.Key, uidValidity, uid,
            message.Headers.Select(h => KeyValuePair.Create(h.Field, Storable(h.Value)!.Trim())), events, now);
        await writer.WriteAsync(events, logEntry, ct);
        return new BounceDecision(BounceOutcome.Processed, null, events.Count);
    }

    private async Task<Target?> ByReturnPathAsync(NpgsqlConnection conn, BounceReport report, MailboxIdentity mailbox, CancellationToken ct)
    {
        foreach (var address in report.EnvelopeAddresses.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (!returnPath.TryParse(address, out var target))
            {
                continue;
            }
            await using var cmd = target.RecipientId is { } rid
                ? Sql.Command(conn, "SELECT r.message_id, r.email, j.tenant_id FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id WHERE r.id = $1", rid)
                : Sql.Command(conn, $"SELECT {Transactional.TransactionalTaskStore.ShownMessageIdSql("t")}, email, tenant_id FROM transactional_tasks t WHERE id = $1", target.TaskId!.Value);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            if (await reader.ReadAsync(ct) && !reader.IsDBNull(0))
            {
                var t = new Target(reader.GetString(0), reader.GetString(1), reader.GetGuid(2));
                if (mailbox.TenantId is null || mailbox.TenantId == t.TenantId)
                {
                    return t;
                }
            }
        }
        return null;
    }

    private static async Task<List<Target>> ByMessageIdAsync(NpgsqlConnection conn, string messageId, MailboxIdentity mailbox, CancellationToken ct)
    {
        var rows = new List<Target>();
        await using var cmd = Sql.Command(conn, $"""
            SELECT r.message_id, r.email, j.tenant_id FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id WHERE r.message_id = $1 AND NOT r.is_open
            UNION ALL
            SELECT message_id, email, tenant_id FROM transactional_tasks WHERE message_id = $1 AND status NOT IN ({Transactional.TransactionalTaskStore.OpenStatuses})
            """, messageId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var t = new Target(reader.GetString(0), reader.GetString(1), reader.GetGuid(2));
            if (mailbox.TenantId is null || mailbox.TenantId == t.TenantId)
            {
                rows.Add(t);
            }
        }
        return rows;
    }

    private static ParsedEmailEvent ToEvent(BounceRecipient entry, Target target, BounceReport report, string reportKey, MailboxIdentity mailbox,
        long uidValidity, long uid, string? subject, DateTimeOffset occurred)
    {
        var email = EmailAddresses.Key(target.Email);
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join('\n', "imap", reportKey, entry.EventType, email, target.MessageId))));
        var raw = report.Format == BounceParser.ArfFormat ? "arf:" + (report.FeedbackType ?? "abuse") : "dsn:" + entry.Action;
        var reason = entry.EventType == EmailEventTypes.SpamReport
            ? $"complaint (feedback type {report.FeedbackType})"
            : entry.Diagnostic ?? (entry.Status is null ? "bounced" : "status " + entry.Status);
        var payload = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["source"] = "imap",
            ["mailbox"] = mailbox.Key,
            ["uid_validity"] = uidValidity,
            ["uid"] = uid,
            ["shape"] = report.Shape,
            ["report_message_id"] = Storable(report.ReportMessageId),
            ["subject"] = Storable(subject),
            ["original_message_id"] = Storable(report.OriginalMessageId),
            ["action"] = Storable(entry.Action),
            ["status"] = Storable(entry.Status),
            ["diagnostic_code"] = Storable(entry.Diagnostic),
            ["final_recipient"] = Storable(entry.Email),
            ["original_recipient"] = Storable(entry.OriginalRecipient),
            ["feedback_type"] = Storable(report.FeedbackType),
        });
        return new ParsedEmailEvent(key, report.Format, entry.EventType, Cut(raw, 64)!, target.MessageId, null, email, occurred, null,
            Cut(Storable(reason), 2000), Cut(entry.Status, 64), null, null, payload);
    }

    // jsonb and text columns refuse NUL; a report can carry anything.
    private static string? Storable(string? s) => s?.Replace("\0", "", StringComparison.Ordinal);

    private static string? Cut(string? s, int max) => s is null ? null : s.Length > max ? s[..max] : s;

    /// <summary>Adds to the mailbox's counters (one row per mailbox, created on first use).</summary>
    public Task CountAsync(MailboxIdentity mailbox, BounceOutcome outcome, CancellationToken ct)
    {
        var column = outcome switch
        {
            BounceOutcome.Processed => "processed",
            BounceOutcome.Ignored => "ignored",
            BounceOutcome.Unmatched => "unmatched",
            _ => "unparsable",
        };
        return Sql.ExecuteAsync(db, $"""
            INSERT INTO bounce_mailbox_status AS s (mailbox_key, tenant_id, processed, ignored, unmatched, unparsable)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (mailbox_key) DO UPDATE SET {column} = s.{column} + 1
            """, ct, mailbox.Key, (object?)mailbox.TenantId ?? DBNull.Value, column == "processed" ? 1L : 0L, column == "ignored" ? 1L : 0L,
            column == "unmatched" ? 1L : 0L, column == "unparsable" ? 1L : 0L);
    }

    /// <summary>Records a successful login, a finished scan or a connection error.</summary>
    public Task StatusAsync(MailboxIdentity mailbox, bool connected, bool checkedNow, string? error, CancellationToken ct) =>
        Sql.ExecuteAsync(db, """
            INSERT INTO bounce_mailbox_status AS s (mailbox_key, tenant_id, processed, ignored, unmatched, unparsable, last_connected_at, last_checked_at, last_error, last_error_at)
            VALUES ($1, $2, 0, 0, 0, 0, CASE WHEN $3 THEN $6 END, CASE WHEN $4 THEN $6 END, left($5, 1000), CASE WHEN $5 IS NOT NULL THEN $6 END)
            ON CONFLICT (mailbox_key) DO UPDATE SET
                last_connected_at = COALESCE(excluded.last_connected_at, s.last_connected_at),
                last_checked_at = COALESCE(excluded.last_checked_at, s.last_checked_at),
                last_error = CASE WHEN $5 IS NOT NULL THEN excluded.last_error WHEN $3 THEN NULL ELSE s.last_error END,
                last_error_at = COALESCE(excluded.last_error_at, s.last_error_at)
            """, ct, mailbox.Key, (object?)mailbox.TenantId ?? DBNull.Value, connected, checkedNow, (object?)error ?? DBNull.Value, clock.GetUtcNow());

    /// <summary>One more failed attempt to store a message's events; returns the attempts so far.</summary>
    public async Task<int> RecordRetryAsync(MailboxIdentity mailbox, long uidValidity, long uid, MimeMessage? message, string error, CancellationToken ct) =>
        await Sql.ScalarAsync<int>(db, """
            INSERT INTO bounce_messages AS m (mailbox_key, tenant_id, uid_validity, uid, report_message_id, subject, outcome, reason, attempts, first_seen_at, updated_at)
            VALUES ($1, $2, $3, $4, left($5, 500), left($6, 500), 'retrying', left($7, 1000), 1, $8, $8)
            ON CONFLICT (mailbox_key, uid_validity, uid) DO UPDATE SET attempts = m.attempts + 1, reason = excluded.reason, updated_at = excluded.updated_at
            RETURNING attempts
            """, ct, mailbox.Key, (object?)mailbox.TenantId ?? DBNull.Value, uidValidity, uid, (object?)Storable(message?.MessageId) ?? DBNull.Value,
            (object?)Storable(message?.Subject) ?? DBNull.Value, Storable(error)!, clock.GetUtcNow());

    /// <summary>Records a message moved to the unparsable folder (after a retrying row, the same row).</summary>
    public Task RecordUnparsableAsync(MailboxIdentity mailbox, long uidValidity, long uid, MimeMessage? message, string reason, CancellationToken ct) =>
        Sql.ExecuteAsync(db, """
            INSERT INTO bounce_messages AS m (mailbox_key, tenant_id, uid_validity, uid, report_message_id, subject, outcome, reason, attempts, first_seen_at, updated_at)
            VALUES ($1, $2, $3, $4, left($5, 500), left($6, 500), 'unparsable', left($7, 1000), 1, $8, $8)
            ON CONFLICT (mailbox_key, uid_validity, uid) DO UPDATE SET outcome = 'unparsable', reason = excluded.reason, updated_at = excluded.updated_at
            """, ct, mailbox.Key, (object?)mailbox.TenantId ?? DBNull.Value, uidValidity, uid, (object?)Storable(message?.MessageId) ?? DBNull.Value,
            (object?)Storable(message?.Subject) ?? DBNull.Value, Storable(reason)!, clock.GetUtcNow());

    /// <summary>A message that was retrying and is now processed: its row goes (only problems keep rows).</summary>
    public Task ForgetAsync(MailboxIdentity mailbox, long uidValidity, long uid, CancellationToken ct) =>
        Sql.ExecuteAsync(db, "DELETE FROM bounce_messages WHERE mailbox_key = $1 AND uid_validity = $2 AND uid = $3 AND outcome = 'retrying'",
            ct, mailbox.Key, uidValidity, uid);
}
