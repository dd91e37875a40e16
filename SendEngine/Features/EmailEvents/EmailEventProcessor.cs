using SendEngine.Data;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Npgsql;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Metrics;
using SendEngine.Delivery;
using SendEngine.Features.SendJobs;
using SendEngine.Features.Suppressions;
using SendEngine.Features.Transactional;
using SendEngine.Features.Webhooks;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Mail;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// Applies stored email events. Each loop claims a batch of unprocessed rows with FOR UPDATE SKIP LOCKED (so several
/// processes share the work) in one transaction; each event gets a savepoint, its effects (recipient status,
/// suppression, statistics, the report queued for Member Center) and processed_at commit together. A crash before the
/// commit leaves the rows unprocessed, so they are applied on the next start. Member Center is not called here: its
/// reports are queued (<see cref="MemberCenterReport"/>) and delivered by <see cref="MemberCenterReporter"/>, so a
/// Member Center outage delays the report but never Send Engine's own suppression. An error in one event's effects
/// (PostgreSQL's or ours) rolls that event back to its savepoint and retries it with backoff.
/// </summary>
public sealed partial class EmailEventProcessor(
    NpgsqlDataSource db,
    WakeSignal<EmailEventProcessor> signal,
    WakeSignal<MemberCenterReporter> reportSignal,
    WakeSignal<Reputation.ReputationGuard> reputationSignal,
    WakeSignal<WebhookGateway.GatewayFeed> feedSignal,
    JobCountsCache countsCache,
    WebhookPublisher webhooks,
    SendEngineMetrics metrics,
    IOptions<EmailEventOptions> options,
    TimeProvider clock,
    ILogger<EmailEventProcessor> logger) : BatchLoop(signal, clock)
{
    private sealed record Row(long Id, string EventType, string MessageId, string? SmtpMessageId, string Email, DateTimeOffset OccurredAt,
        string? Reason, string? BounceType, DateTimeOffset ReceivedAt, int Attempts, Guid? GatewayEntryId, bool ForceApply);

    /// <param name="TaskId">Set for a transactional task (then RecipientId, JobId and ListId are not).</param>
    private sealed record Target(long RecipientId, Guid JobId, Guid TenantId, Guid ListId, string Status, string EmailKey, Guid? TaskId = null)
    {
        public object JobIdOrNull => TaskId is null ? JobId : DBNull.Value;
        public object RecipientIdOrNull => TaskId is null ? RecipientId : DBNull.Value;
    }

    /// <summary>The outcome of an event naming a message that was not sent to the event's address: nothing changes.</summary>
    public const string RecipientMismatch = "recipient_mismatch";

    private DateTimeOffset _lastBacklog = DateTimeOffset.MinValue;
    private int _published;
    /// <summary>What the event being applied changed, for the gateway log (reset per event).</summary>
    private readonly List<string> _effects = [];
    private bool _reputationChanged;

    /// <summary>The tenant webhook event type of an ESP event, or null when it raises none.</summary>
    private static string? WebhookType(string eventType) => eventType switch
    {
        EmailEventTypes.Delivered => WebhookEventTypes.Delivered,
        EmailEventTypes.HardBounce or EmailEventTypes.SoftBounce => WebhookEventTypes.Bounced,
        EmailEventTypes.Deferred => WebhookEventTypes.Deferred,
        EmailEventTypes.Rejected => WebhookEventTypes.Rejected,
        EmailEventTypes.SpamReport => WebhookEventTypes.Complained,
        EmailEventTypes.Open => WebhookEventTypes.Opened,
        EmailEventTypes.Click => WebhookEventTypes.Clicked,
        EmailEventTypes.Unsubscribe => WebhookEventTypes.Unsubscribed,
        _ => null,
    };

    protected override bool Enabled => options.Value.ProcessorEnabled;
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => options.Value.BatchSize;

    protected override async Task<int> RunBatchAsync(CancellationToken ct)
    {
        var handled = await ProcessBatchAsync(ct);
        if (Clock.GetUtcNow() - _lastBacklog > TimeSpan.FromSeconds(5))
        {
            metrics.Backlog(await Sql.ScalarAsync<long>(db, "SELECT count(*) FROM email_events WHERE processed_at IS NULL", ct));
            _lastBacklog = Clock.GetUtcNow();
        }
        return handled;
    }

    // Deadlock, lost connection…: nothing was committed; the same rows are claimed again.
    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex.Message);

    /// <summary>One batch; returns how many rows it claimed.</summary>
    public async Task<int> ProcessBatchAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var rows = new List<Row>();
        await using (var cmd = Sql.Command(conn, """
            SELECT id, event_type, message_id, smtp_message_id, email, occurred_at, reason, bounce_type, received_at, attempts,
                gateway_entry_id, force_apply
            FROM email_events
            WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
            ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
            """, now, o.BatchSize))
        {
            cmd.Transaction = tx;
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                rows.Add(new Row(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5), reader.IsDBNull(6) ? null : reader.GetString(6),
                    reader.IsDBNull(7) ? null : reader.GetString(7), reader.GetFieldValue<DateTimeOffset>(8), reader.GetInt32(9),
                    reader.IsDBNull(10) ? null : reader.GetGuid(10), reader.GetBoolean(11)));
            }
        }
        if (rows.Count == 0)
        {
            return 0;
        }

        var targets = await CorrelateAsync(conn, tx, rows, ct);
        // Tenants whose gateway ingestion is off: their events are stored and logged, not applied (a handful of rows).
        var held = new HashSet<Guid>();
        await using (var cmd = Sql.Command(conn, "SELECT tenant_id FROM webhook_gateway_settings WHERE NOT ingestion_enabled"))
        {
            cmd.Transaction = tx;
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                held.Add(reader.GetGuid(0));
            }
        }
        var attributed = new Dictionary<Guid, Guid>();
        var done = new List<(Row Row, string Outcome)>();
        var changedJobs = new HashSet<Guid>();
        // Events that change nothing but their own row (no recipient or task: unknown message, ignored type, mismatch,
        // held, test) need no savepoint: they are recorded together by one UPDATE after the loop, and the ones still
        // waiting for their message id by another. Under a flood of such events this was three statements per event.
        var quiet = new List<(Row Row, string Outcome, Guid? TenantId, string? Effect)>();
        var waiting = new List<long>();
        Row? firstUnknown = null;
        var unknown = 0;
        foreach (var row in rows)
        {
            var candidates = (targets.GetValueOrDefault(row.MessageId) ?? [])
                .Concat(row.SmtpMessageId is { } smtp ? targets.GetValueOrDefault(smtp.Trim('<', '>')) ?? [] : [])
                .ToList();
            // The event acts only on a recipient of that message with the event's own address: whoever can post events
            // must not unsubscribe or suppress another reader by quoting a Message-ID from any newsletter.
            var emailKey = EmailAddresses.Key(row.Email);
            var target = candidates.FirstOrDefault(c => c.EmailKey == emailKey);
            var mismatch = target is null && candidates.Count > 0;
            // The gateway test console's sample events name no real message: attributed to the tenant in their id, never applied.
            var testTenant = target is null && !mismatch ? WebhookGateway.GatewayTestEvents.TenantOf(row.MessageId) : null;
            var tenantId = target?.TenantId ?? testTenant;
            if (target is null)
            {
                var quietOutcome = mismatch ? RecipientMismatch
                    : tenantId is { } ht && held.Contains(ht) && !row.ForceApply ? WebhookGateway.GatewayTestEvents.HeldOutcome
                    : testTenant is not null ? WebhookGateway.GatewayTestEvents.TestOutcome
                    : row.EventType is EmailEventTypes.Unknown or EmailEventTypes.Processed ? "ignored"
                    : now - row.ReceivedAt < o.UnknownMessageGrace ? null
                    : "unknown_message";
                if (quietOutcome is null)
                {
                    // The runner may not have committed the send result (and its message id) yet: looked at again later.
                    waiting.Add(row.Id);
                    continue;
                }
                if (mismatch)
                {
                    LogRecipientMismatch(logger, row.Id, row.EventType, row.MessageId, candidates[0].JobId);
                }
                else if (quietOutcome == "unknown_message")
                {
                    firstUnknown ??= row;
                    unknown++;
                }
                quiet.Add((row, quietOutcome, tenantId, QuietEffect(quietOutcome)));
                done.Add((row, quietOutcome));
                if (row.GatewayEntryId is { } quietEntry && tenantId is { } quietTenant)
                {
                    attributed.TryAdd(quietEntry, quietTenant);
                }
                continue;
            }
            await tx.SaveAsync("ev", ct);
            _effects.Clear();
            try
            {
                var outcome = held.Contains(target.TenantId) && !row.ForceApply ? WebhookGateway.GatewayTestEvents.HeldOutcome
                    : await ApplyAsync(conn, tx, row, target, ct);
                var effect = outcome == WebhookGateway.GatewayTestEvents.HeldOutcome ? QuietEffect(outcome)
                    : _effects.Count > 0 ? string.Join("; ", _effects) : null;
                await Sql.ExecuteAsync(conn, tx, """
                    UPDATE email_events SET processed_at = $2, outcome = $3, tenant_id = $4, job_id = $5, recipient_id = $6,
                        attempts = attempts + 1, last_error = NULL, next_attempt_at = NULL, effect = left($7, 500)
                    WHERE id = $1
                    """, ct, row.Id, Clock.GetUtcNow(), outcome, target.TenantId, target.JobIdOrNull, target.RecipientIdOrNull,
                    (object?)effect ?? DBNull.Value);
                await tx.ReleaseAsync("ev", ct);
                done.Add((row, outcome));
                // Only entries with a tenant: one that stays in the platform log is neither updated nor announced
                // (its live view showed it when it arrived; the list shows the result).
                if (row.GatewayEntryId is { } entryId)
                {
                    attributed.TryAdd(entryId, target.TenantId);
                }
                if (target.TaskId is null)
                {
                    changedJobs.Add(target.JobId);
                }
            }
            // Any error raised by one event's effects (PostgreSQL said no, or our code threw on the row's data, e.g. a
            // date out of range) is that event's failure: rolled back to its savepoint and retried with backoff, so one
            // bad row cannot block the whole queue. A lost connection (NpgsqlException without a server error) or
            // cancellation still fails the batch: the connection cannot be trusted, and nothing is committed.
            catch (Exception ex) when (IsEventFailure(ex))
            {
                await tx.RollbackAsync("ev", ct);
                var attempts = row.Attempts + 1;
                var giveUp = attempts >= o.MaxAttempts;
                var error = ex is PostgresException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
                LogEventFailed(logger, row.Id, row.EventType, attempts, error);
                var delay = o.RetryDelay(attempts);
                await Sql.ExecuteAsync(conn, tx, """
                    UPDATE email_events SET attempts = $2, last_error = left($3, 2000), next_attempt_at = $4,
                        processed_at = CASE WHEN $5 THEN $6 END, outcome = CASE WHEN $5 THEN 'failed' END
                    WHERE id = $1
                    """, ct, row.Id, attempts, error, Clock.GetUtcNow() + delay, giveUp, Clock.GetUtcNow());
                if (giveUp)
                {
                    done.Add((row, "failed"));
                }
            }
        }
        if (quiet.Count > 0)
        {
            await Sql.ExecuteAsync(conn, tx, """
                UPDATE email_events e SET processed_at = $2, outcome = u.outcome, tenant_id = u.tenant_id, job_id = NULL,
                    recipient_id = NULL, attempts = e.attempts + 1, last_error = NULL, next_attempt_at = NULL, effect = u.effect
                FROM unnest($1::bigint[], $3::text[], $4::uuid[], $5::text[]) AS u(id, outcome, tenant_id, effect)
                WHERE e.id = u.id
                """, ct, quiet.Select(q => q.Row.Id).ToArray(), Clock.GetUtcNow(), quiet.Select(q => q.Outcome).ToArray(),
                quiet.Select(q => q.TenantId).ToArray(), quiet.Select(q => q.Effect).ToArray());
        }
        if (waiting.Count > 0)
        {
            await Sql.ExecuteAsync(conn, tx, "UPDATE email_events SET attempts = attempts + 1, next_attempt_at = $2 WHERE id = ANY($1)",
                ct, waiting.ToArray(), now + TimeSpan.FromTicks(Math.Max(o.UnknownMessageGrace.Ticks / 10, TimeSpan.FromMilliseconds(200).Ticks)));
        }
        if (firstUnknown is not null)
        {
            // One line per batch, not per event: a flood of callbacks for unknown messages must not become a flood of logs.
            LogUnknownMessages(logger, unknown, firstUnknown.Id, firstUnknown.EventType, firstUnknown.MessageId);
        }
        if (attributed.Count > 0)
        {
            // The log entries learn their tenant (the first event's that matched; only those without one are written),
            // and the live views hear of every entry whose events were processed, at this commit (no renumbering).
            await Sql.ExecuteAsync(conn, tx, $"""
                WITH u AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS u(i, t)),
                a AS (UPDATE webhook_gateway_entries e SET tenant_id = u.t FROM u WHERE e.id = u.i AND e.tenant_id IS NULL)
                {WebhookGateway.GatewayFeed.NotifySql("u", "i")}
                """, ct, attributed.Keys.ToArray(), attributed.Values.ToArray());
        }
        await tx.CommitAsync(ct);
        if (attributed.Count > 0)
        {
            feedSignal.Notify();
        }
        countsCache.Invalidate(changedJobs);
        if (Interlocked.Exchange(ref _published, 0) > 0)
        {
            webhooks.Notify();
        }
        if (_reputationChanged)
        {
            _reputationChanged = false;
            reputationSignal.Notify();
        }
        if (done.Any(d => d.Row.EventType is EmailEventTypes.HardBounce or EmailEventTypes.SoftBounce or EmailEventTypes.SpamReport or EmailEventTypes.Unsubscribe))
        {
            reportSignal.Notify();
        }
        var end = Clock.GetUtcNow();
        foreach (var (row, outcome) in done)
        {
            metrics.Processed(row.EventType, outcome, end - row.ReceivedAt);
        }
        return rows.Count;
    }

    /// <summary>What an event without effects changed, for the gateway log.</summary>
    private static string? QuietEffect(string outcome) => outcome switch
    {
        WebhookGateway.GatewayTestEvents.HeldOutcome => "held: ingestion is off for the tenant",
        WebhookGateway.GatewayTestEvents.TestOutcome => "test event: verified and processed; no reader, message or statistic changed",
        RecipientMismatch => "nothing: the message was not sent to this address",
        "unknown_message" => "nothing: no message with this id",
        _ => null,
    };

    /// <summary>An exception that is one event's own failure, not the batch's (lost connection, shutdown).</summary>
    private static bool IsEventFailure(Exception ex) => ex switch
    {
        PostgresException => true,
        NpgsqlException or OperationCanceledException => false,
        _ => true,
    };

    /// <summary>Recipient rows (with their job) for the batch's message ids: Tencent's bulkId, or the RFC 5322 Message-ID.</summary>
    private static async Task<Dictionary<string, List<Target>>> CorrelateAsync(NpgsqlConnection conn, NpgsqlTransaction tx, List<Row> rows, CancellationToken ct)
    {
        var ids = rows.Select(r => r.MessageId)
            .Concat(rows.Where(r => r.SmtpMessageId is not null).Select(r => r.SmtpMessageId!.Trim('<', '>')))
            .Distinct(StringComparer.Ordinal).ToArray();
        var targets = new Dictionary<string, List<Target>>(StringComparer.Ordinal);
        await using var cmd = Sql.Command(conn, """
            SELECT r.message_id, r.id, r.job_id, j.tenant_id, j.list_id, r.status, r.email
            FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
            WHERE r.message_id = ANY($1) AND NOT r.is_open
            """, (object)ids);
        cmd.Transaction = tx;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetString(0);
            if (!targets.TryGetValue(id, out var list))
            {
                targets[id] = list = [];
            }
            list.Add(new Target(reader.GetInt64(1), reader.GetGuid(2), reader.GetGuid(3), reader.GetGuid(4), reader.GetString(5),
                EmailAddresses.Key(reader.GetString(6))));
        }
        await reader.DisposeAsync();
        // An open row's (pending, sending) or task's Message-ID is already chosen (by the snapshot, or when the task was
        // created) but not yet recorded as handed over: its event waits, as one for an unknown id does. Transactional
        // tasks are found by the same ids (their Message-ID, or Tencent's MessageId).
        await using var tasks = Sql.Command(conn, $"SELECT message_id, id, tenant_id, status, email_key FROM transactional_tasks WHERE message_id = ANY($1) AND status NOT IN ({Transactional.TransactionalTaskStore.OpenStatuses})", (object)ids);
        tasks.Transaction = tx;
        await using var taskReader = await tasks.ExecuteReaderAsync(ct);
        while (await taskReader.ReadAsync(ct))
        {
            var id = taskReader.GetString(0);
            if (!targets.TryGetValue(id, out var list))
            {
                targets[id] = list = [];
            }
            list.Add(new Target(0, Guid.Empty, taskReader.GetGuid(2), Guid.Empty, taskReader.GetString(3), taskReader.GetString(4), taskReader.GetGuid(1)));
        }
        return targets;
    }

    /// <summary>The effects of one event on its recipient or task; returns its outcome.</summary>
    private async Task<string> ApplyAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Row row, Target t, CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        var email = t.EmailKey;
        var detail = row.Reason is { Length: > 0 } r ? r : null;
        // The event row needs its tenant before the soft-bounce count below includes it.
        await Sql.ExecuteAsync(conn, tx, "UPDATE email_events SET tenant_id = $2, job_id = $3, recipient_id = $4 WHERE id = $1",
            ct, row.Id, t.TenantId, t.JobIdOrNull, t.RecipientIdOrNull);
        var stats = new StatDelta();
        var outcome = "applied";
        switch (row.EventType)
        {
            case EmailEventTypes.Delivered:
                stats.Delivered = 1;
                if (t.TaskId is { } delivered)
                {
                    await TransactionalTaskStore.MarkDeliveredAsync(conn, tx, delivered, ct);
                    _effects.Add("task → delivered");
                    break;
                }
                await RecipientStore.MarkDeliveredAsync(conn, tx, t.RecipientId, now, ct);
                _effects.Add("recipient → delivered");
                break;
            case EmailEventTypes.Rejected when t.TaskId is { } rejected:
                await TransactionalTaskStore.MarkRejectedByEspAsync(conn, tx, rejected, "rejected by the ESP: " + (detail ?? "no reason given"), ct);
                _effects.Add("task → rejected");
                break;
            case EmailEventTypes.Rejected:
                await RecipientStore.MarkRejectedByEspAsync(conn, tx, t.RecipientId, "rejected by the ESP: " + (detail ?? "no reason given"), now, ct);
                _effects.Add("recipient → rejected");
                break;
            case EmailEventTypes.HardBounce:
                stats.Bounced = 1;
                await HardBounceAsync(conn, tx, t, email, row, detail, now, ct);
                break;
            case EmailEventTypes.SoftBounce:
                stats.SoftBounced = 1;
                var soft = await ScalarAsync(conn, tx, """
                    SELECT count(*) FROM email_events
                    WHERE tenant_id = $1 AND email = $2 AND event_type = 'soft_bounce' AND occurred_at > $3
                      AND (processed_at IS NOT NULL OR id = $4) AND outcome IS DISTINCT FROM 'held'
                    """, ct, t.TenantId, email, row.OccurredAt - o.SoftBounceWindow, row.Id);
                if (soft >= o.SoftBounceThreshold)
                {
                    stats.Bounced = 1;
                    outcome = "applied_as_hard_bounce";
                    await HardBounceAsync(conn, tx, t, email, row, $"{soft} soft bounces within {o.SoftBounceWindow.TotalDays:0.#} days; last: {detail}", now, ct);
                }
                break;
            case EmailEventTypes.SpamReport:
                stats.Complaints = 1;
                await SuppressionStore.AddAsync(conn, tx, t.TenantId, email, "complaint", now, ct);
                _effects.Add("suppression added (complaint)");
                await QueueReportAsync(conn, tx, t.TenantId, email, "complaint", null, row, now, ct);
                break;
            case EmailEventTypes.Unsubscribe:
                stats.Unsubscribes = 1;
                if (t.TaskId is not null)
                {
                    // Transactional mail belongs to no list: counted, and none of the tenant's lists changes.
                    break;
                }
                // Only the job's list: other lists of the tenant keep the address (no tenant-wide suppression).
                await QueueReportAsync(conn, tx, t.TenantId, email, "unsubscribe", t.ListId, row, now, ct);
                _effects.Add("unsubscribe from the job's list reported to Member Center");
                break;
            case EmailEventTypes.Open:
                stats.Opened = 1;
                break;
            case EmailEventTypes.Click:
                stats.Clicked = 1;
                break;
            case EmailEventTypes.Deferred:
                break;
            default:
                outcome = "ignored";
                break;
        }
        if (WebhookType(row.EventType) is { } hook)
        {
            var bounceType = row.EventType == EmailEventTypes.SoftBounce ? "soft" : row.EventType == EmailEventTypes.HardBounce ? "hard" : null;
            _published += await webhooks.PublishAsync(conn, tx, t.TenantId, hook, t.TaskId is { } taskId
                ? new
                {
                    Source = "transactional", TaskId = taskId.ToString("N"), Email = email, MessageId = row.MessageId, EventId = row.Id,
                    OccurredAt = row.OccurredAt, Reason = detail, BounceType = bounceType,
                }
                : (object)new
                {
                    Source = "bulk", JobId = t.JobId, RecipientId = t.RecipientId, Email = email, MessageId = row.MessageId, EventId = row.Id,
                    OccurredAt = row.OccurredAt, Reason = detail, BounceType = bounceType,
                }, now, ct);
        }
        await Sql.ExecuteAsync(conn, tx, """
            INSERT INTO email_statistics AS s (tenant_id, email, total_delivered, total_opened, total_clicked, total_bounced,
                total_soft_bounced, total_complaints, total_unsubscribes, last_activity, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (tenant_id, email) DO UPDATE SET
                total_delivered = s.total_delivered + excluded.total_delivered,
                total_opened = s.total_opened + excluded.total_opened,
                total_clicked = s.total_clicked + excluded.total_clicked,
                total_bounced = s.total_bounced + excluded.total_bounced,
                total_soft_bounced = s.total_soft_bounced + excluded.total_soft_bounced,
                total_complaints = s.total_complaints + excluded.total_complaints,
                total_unsubscribes = s.total_unsubscribes + excluded.total_unsubscribes,
                last_activity = GREATEST(s.last_activity, excluded.last_activity),
                updated_at = excluded.updated_at
            """, ct, t.TenantId, email, stats.Delivered, stats.Opened, stats.Clicked, stats.Bounced, stats.SoftBounced,
            stats.Complaints, stats.Unsubscribes, row.OccurredAt, now);
        _effects.Add("statistics counted");
        if (t.TaskId is null && (stats.Bounced > 0 || stats.Complaints > 0))
        {
            // The reputation guard's counters (Features/Reputation): bulk mail's hard bounces and complaints, by the hour
            // they were applied; the messages themselves were counted when the relay or ESP took them.
            await Sql.ExecuteAsync(conn, tx, """
                INSERT INTO reputation_counts AS c (tenant_id, hour, source_id, sent, hard_bounces, complaints)
                VALUES ($1, date_trunc('hour', $2::timestamptz, 'UTC'), $3, 0, $4, $5)
                ON CONFLICT (tenant_id, hour, source_id) DO UPDATE SET hard_bounces = c.hard_bounces + excluded.hard_bounces,
                    complaints = c.complaints + excluded.complaints
                """, ct, t.TenantId, now, t.JobId, (long)stats.Bounced, (long)stats.Complaints);
            _reputationChanged = true;
        }
        return outcome;
    }

    private async Task HardBounceAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Target t, string email, Row row, string? detail, DateTimeOffset now, CancellationToken ct)
    {
        if (t.TaskId is { } task)
        {
            await TransactionalTaskStore.MarkBouncedAsync(conn, tx, task, "bounced: " + (detail ?? "hard bounce"), ct);
            _effects.Add("task → bounced");
        }
        else
        {
            await RecipientStore.MarkBouncedAsync(conn, tx, t.RecipientId, "bounced: " + (detail ?? "hard bounce"), now, ct);
            _effects.Add("recipient → bounced");
        }
        await SuppressionStore.AddAsync(conn, tx, t.TenantId, email, "hard_bounce", now, ct);
        _effects.Add("suppression added (hard_bounce)");
        await QueueReportAsync(conn, tx, t.TenantId, email, "hard_bounce", null, row, now, ct);
    }

    private static Task QueueReportAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, string email, string reason, Guid? listId,
        Row row, DateTimeOffset now, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, """
            INSERT INTO member_center_reports (tenant_id, email, reason, list_id, occurred_at, email_event_id, created_at, attempts, next_attempt_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7)
            """, ct, tenantId, email, reason, (object?)listId ?? DBNull.Value, row.OccurredAt, row.Id, now);

    private static async Task<long> ScalarAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params object[] args)
    {
        await using var cmd = Sql.Command(conn, sql, args);
        cmd.Transaction = tx;
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private sealed class StatDelta
    {
        public int Delivered, Opened, Clicked, Bounced, SoftBounced, Complaints, Unsubscribes;
    }

    [LoggerMessage(LogLevel.Warning, "Email event processing failed: {Error}")]
    private static partial void LogBatchFailed(ILogger logger, string error);

    [LoggerMessage(LogLevel.Warning, "Email event {Id} ({EventType}) failed, attempt {Attempts}: {Error}")]
    private static partial void LogEventFailed(ILogger logger, long id, string eventType, int attempts, string error);

    [LoggerMessage(LogLevel.Warning, "Email event {Id} ({EventType}) names message {MessageId} of job {JobId}, which was not sent to the event's address; stored as recipient_mismatch, not applied")]
    private static partial void LogRecipientMismatch(ILogger logger, long id, string eventType, string messageId, Guid jobId);

    [LoggerMessage(LogLevel.Warning, "{Count} email events name unknown message ids (the first: event {Id}, {EventType}, message {MessageId}); stored as unknown_message, not applied")]
    private static partial void LogUnknownMessages(ILogger logger, int count, long id, string eventType, string messageId);
}
