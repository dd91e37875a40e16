using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using SendEngine.Data;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Features.Retention;

/// <summary>Retention__* keys: how long Send Engine keeps what grows with traffic.</summary>
public sealed class RetentionOptions
{
    public const string Section = "Retention";

    /// <summary>How often the sweep runs (the first run is one interval after start).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>A processed webhook event's raw payload, client IP and user agent are cleared this long after receipt.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan RawEventRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// A finished job's (completed, cancelled, failed) per-recipient rows are deleted this long after it finished; its
    /// counts and event counters are kept on the job first.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan FinishedJobRecipientRetention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>
    /// A transactional request is deleted with its tasks this long after it completed (its last task became final); the
    /// tasks' "sent" count is kept in the address statistics first. Its Idempotency-Key is remembered as long as it is kept.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan TransactionalRetention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>Email events (already without their raw fields) are deleted this long after receipt.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan EventRetention { get; set; } = TimeSpan.FromDays(365);

    /// <summary>Reports Member Center accepted are deleted this long after delivery; failed ones stay for an operator.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan DeliveredReportRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Tenant webhook attempts are deleted this long after they were made, and finished webhook messages (delivered or
    /// failed) this long after they finished; pending ones stay until the dispatcher is done with them.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan WebhookAttemptRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Rows of bounce-mailbox messages set aside as unparsable are deleted this long after they were last touched (the
    /// message itself stays in the mailbox's unparsable folder); so are retrying rows no scan has touched for as long
    /// (their message left the folder by other hands, or the mailbox was removed).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan BounceMessageRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long the operation log keeps a row (Retention__OperationLogRetention); older rows are the only ones its
    /// append-only trigger lets this sweep delete.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan OperationLogRetention { get; set; } = TimeSpan.FromDays(400);

    /// <summary>Rows per statement, so a large backlog never holds many locks or a long transaction.</summary>
    [Range(100, 100_000)]
    public int BatchSize { get; set; } = 5_000;
}

/// <summary>
/// Deletes or thins out, on a timer, every Send Engine table that grows with traffic (docs/send-engine.md
/// "Retention"). Several processes may sweep at once: statements take their rows with SKIP LOCKED, and a job's
/// counts are kept under its row lock, so they share the work instead of repeating it.
/// </summary>
public sealed partial class RetentionSweeper(
    NpgsqlDataSource db,
    IOptions<RetentionOptions> options,
    TimeProvider clock,
    ILogger<RetentionSweeper> logger) : RetentionLoop(clock, logger)
{
    public sealed record Result(long RawEvents, long Jobs, long Recipients, long Events, long Reports, long WebhookAttempts = 0, long WebhookMessages = 0,
        long TransactionalRequests = 0, long TransactionalTasks = 0, long OperationLog = 0, long BounceMessages = 0);

    private static readonly string[] FinishedStatuses = [SendJobStatuses.Completed, SendJobStatuses.Cancelled, SendJobStatuses.Failed];
    private static readonly string[] SentStatuses = [RecipientStatuses.Sent, RecipientStatuses.Delivered, RecipientStatuses.Bounced];
    // As EmailEventsApi.TransactionalSentToAddressSql counts them.
    private static readonly string[] TaskSentStatuses = [EmailTaskStatuses.Sent, EmailTaskStatuses.Delivered, EmailTaskStatuses.Bounced];

    protected override TimeSpan Interval => options.Value.Interval;

    protected override Task RunSweepAsync(CancellationToken ct) => SweepAsync(ct);

    public async Task<Result> SweepAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        // Only processed events: the processor still needs the payload of one it has not applied yet.
        var raw = await RepeatAsync("""
            UPDATE email_events SET payload = '{}'::jsonb, ip_address = NULL, user_agent = NULL
            WHERE id IN (SELECT id FROM email_events
                         WHERE received_at < $1 AND payload <> '{}'::jsonb AND processed_at IS NOT NULL
                         LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.RawEventRetention, ct);
        var (jobs, recipients) = await ArchiveFinishedJobsAsync(now - o.FinishedJobRecipientRetention, now, ct);
        var (requests, tasks) = await DeleteTransactionalAsync(now - o.TransactionalRetention, now, ct);
        var events = await RepeatAsync("""
            DELETE FROM email_events WHERE id IN (
                SELECT id FROM email_events WHERE received_at < $1 AND processed_at IS NOT NULL LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.EventRetention, ct);
        var reports = await RepeatAsync("""
            DELETE FROM member_center_reports WHERE id IN (
                SELECT id FROM member_center_reports WHERE completed_at < $1 AND outcome = 'sent' LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.DeliveredReportRetention, ct);
        var attempts = await RepeatAsync("""
            DELETE FROM webhook_attempts WHERE id IN (
                SELECT id FROM webhook_attempts WHERE attempted_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.WebhookAttemptRetention, ct);
        var messages = await RepeatAsync("""
            DELETE FROM webhook_messages WHERE id IN (
                SELECT id FROM webhook_messages WHERE status <> 'pending' AND completed_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.WebhookAttemptRetention, ct);
        var bounceMessages = await RepeatAsync("""
            DELETE FROM bounce_messages WHERE id IN (
                SELECT id FROM bounce_messages WHERE updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
            """, now - o.BounceMessageRetention, ct);
        var operations = await OperationLogRetention.SweepAsync(db, now - o.OperationLogRetention, o.BatchSize, ct);
        if (raw + recipients + events + reports + attempts + messages + requests + operations + bounceMessages > 0)
        {
            LogBounceMessagesSwept(Logger, bounceMessages);
            LogSwept(Logger, raw, jobs, recipients, events, reports);
            LogWebhooksSwept(Logger, attempts, messages);
            LogTransactionalSwept(Logger, requests, tasks);
            LogOperationLogSwept(Logger, operations);
        }
        return new Result(raw, jobs, recipients, events, reports, attempts, messages, requests, tasks, operations, bounceMessages);
    }

    /// <summary>
    /// Keeps the counts of each job finished before <paramref name="before"/> on the job (recipients by status and the
    /// event counters), then deletes its recipient rows; their "sent" count moves into the address statistics.
    /// </summary>
    private async Task<(long Jobs, long Recipients)> ArchiveFinishedJobsAsync(DateTimeOffset before, DateTimeOffset now, CancellationToken ct)
    {
        long jobs = 0, recipients = 0;
        var due = new List<(Guid Id, Guid TenantId)>();
        await using (var conn = await db.OpenConnectionAsync(ct))
        await using (var cmd = Sql.Command(conn, """
            SELECT id, tenant_id FROM send_jobs
            WHERE status = ANY($1) AND coalesce(finished_at, cancelled_at, created_at) < $2
              -- or archived by a sweep that stopped half-way: its remaining rows
              AND (archived_at IS NULL OR EXISTS (SELECT 1 FROM send_job_recipients r WHERE r.job_id = send_jobs.id))
            ORDER BY id
            """, FinishedStatuses, before))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                due.Add((reader.GetGuid(0), reader.GetGuid(1)));
            }
        }
        foreach (var (jobId, tenantId) in due)
        {
            var events = await EmailEventsApi.JobCountsAsync(db, jobId, ct);
            // The job row's lock makes one process archive it; the counts are taken in the same transaction.
            var archived = await Sql.ExecuteAsync(db, """
                UPDATE send_jobs j SET archived_at = $2,
                    archived_counts = coalesce((SELECT jsonb_object_agg(status, n) FROM
                        (SELECT status, count(*) AS n FROM send_job_recipients WHERE job_id = $1 GROUP BY status) c), '{}'::jsonb),
                    archived_event_counts = $3::jsonb
                WHERE j.id = $1 AND j.archived_at IS NULL
                """, ct, jobId, now, JsonSerializer.Serialize(events, ContractJson));
            jobs += archived;
            recipients += await DeleteRecipientsAsync(jobId, tenantId, now, ct);
        }
        return (jobs, recipients);
    }

    private async Task<long> DeleteRecipientsAsync(Guid jobId, Guid tenantId, DateTimeOffset now, CancellationToken ct)
    {
        long total = 0;
        while (true)
        {
            // The address statistics count "sent" from these rows; what is deleted is added to total_sent_archived
            // in the same statement, so GET /api/email-addresses/{email}/statistics answers the same before and after.
            var deleted = await Sql.ScalarAsync<long>(db, """
                WITH gone AS (
                    DELETE FROM send_job_recipients WHERE id IN (
                        SELECT id FROM send_job_recipients WHERE job_id = $1 LIMIT $3 FOR UPDATE SKIP LOCKED)
                    RETURNING email, status),
                sent AS (
                    INSERT INTO email_statistics AS s (tenant_id, email, total_delivered, total_opened, total_clicked, total_bounced,
                        total_soft_bounced, total_complaints, total_unsubscribes, total_sent_archived, updated_at)
                    SELECT $2, lower(email), 0, 0, 0, 0, 0, 0, 0, count(*), $4 FROM gone WHERE status = ANY($5) GROUP BY lower(email)
                    ON CONFLICT (tenant_id, email) DO UPDATE SET total_sent_archived = s.total_sent_archived + excluded.total_sent_archived)
                SELECT count(*) FROM gone
                """, ct, jobId, tenantId, options.Value.BatchSize, now, SentStatuses);
            total += deleted;
            if (deleted < options.Value.BatchSize)
            {
                return total;
            }
        }
    }

    /// <summary>
    /// Deletes transactional requests completed before <paramref name="before"/> with their tasks, a batch of requests
    /// per statement; the tasks' "sent" count moves into the address statistics in the same statement.
    /// </summary>
    private async Task<(long Requests, long Tasks)> DeleteTransactionalAsync(DateTimeOffset before, DateTimeOffset now, CancellationToken ct)
    {
        long requests = 0, tasks = 0;
        while (true)
        {
            // The request rows' locks make one process take them; found through created_at (completed_at has no index, so
            // that the completion is a HOT update, and a request completes after it was created). GET /api/email-addresses/{email}/statistics counts
            // these tasks directly, so what is deleted is added to total_sent_archived (keyed as that route looks it up:
            // the task's email_key) and the answer stays the same. The tasks are deleted here rather than by the
            // foreign key's cascade so that they can be counted.
            await using var conn = await db.OpenConnectionAsync(ct);
            await using var cmd = Sql.Command(conn, """
                WITH req AS (
                    SELECT id FROM transactional_requests WHERE created_at < $1 AND completed_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
                gone AS (
                    DELETE FROM transactional_tasks t USING req WHERE t.request_id = req.id
                    RETURNING t.tenant_id, t.email_key, t.status),
                sent AS (
                    INSERT INTO email_statistics AS s (tenant_id, email, total_delivered, total_opened, total_clicked, total_bounced,
                        total_soft_bounced, total_complaints, total_unsubscribes, total_sent_archived, updated_at)
                    SELECT tenant_id, email_key, 0, 0, 0, 0, 0, 0, 0, count(*), $3 FROM gone WHERE status = ANY($4) GROUP BY tenant_id, email_key
                    ON CONFLICT (tenant_id, email) DO UPDATE SET total_sent_archived = s.total_sent_archived + excluded.total_sent_archived),
                dropped AS (
                    DELETE FROM transactional_requests r USING req WHERE r.id = req.id RETURNING r.id)
                SELECT (SELECT count(*) FROM dropped), (SELECT count(*) FROM gone)
                """, before, options.Value.BatchSize, now, TaskSentStatuses);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            var n = reader.GetInt64(0);
            requests += n;
            tasks += reader.GetInt64(1);
            if (n < options.Value.BatchSize)
            {
                return (requests, tasks);
            }
        }
    }

    private Task<long> RepeatAsync(string sql, DateTimeOffset before, CancellationToken ct) =>
        RepeatAsync(db, sql, before, options.Value.BatchSize, ct);

    private static readonly JsonSerializerOptions ContractJson = CreateJson();

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(o);
        return o;
    }

    /// <summary>The counters kept on an archived job, as <see cref="SweepAsync"/> wrote them.</summary>
    public static SendJobEventCounts? ReadEventCounts(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<SendJobEventCounts>(json, ContractJson);

    /// <summary>The recipient counts by status kept on an archived job.</summary>
    public static Dictionary<string, int>? ReadCounts(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<Dictionary<string, int>>(json);

    [LoggerMessage(LogLevel.Information, "Retention: cleared {RawEvents} raw event payloads, archived {Jobs} finished jobs ({Recipients} recipient rows), deleted {Events} old events and {Reports} delivered Member Center reports")]
    private static partial void LogSwept(ILogger logger, long rawEvents, long jobs, long recipients, long events, long reports);

    [LoggerMessage(LogLevel.Information, "Retention: deleted {Attempts} webhook attempts and {Messages} finished webhook messages")]
    private static partial void LogWebhooksSwept(ILogger logger, long attempts, long messages);

    [LoggerMessage(LogLevel.Information, "Retention: deleted {Requests} transactional requests ({Tasks} tasks)")]
    private static partial void LogTransactionalSwept(ILogger logger, long requests, long tasks);

    [LoggerMessage(LogLevel.Information, "Retention: deleted {BounceMessages} bounce-mailbox message rows (unparsable or stale retrying)")]
    private static partial void LogBounceMessagesSwept(ILogger logger, long bounceMessages);

    [LoggerMessage(LogLevel.Information, "Retention: deleted {OperationLog} operation-log rows past their retention")]
    private static partial void LogOperationLogSwept(ILogger logger, long operationLog);
}
