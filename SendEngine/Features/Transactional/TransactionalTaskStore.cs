using Newsletter.Contracts.Webhooks;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;
using S = Newsletter.Contracts.Transactional.EmailTaskStatuses;

namespace SendEngine.Features.Transactional;

/// <summary>A task as the API creates it.</summary>
internal sealed record NewTask(Guid Id, int Position, string Email, string EmailKey, string? Name, string Type, string Status,
    string? RejectReason, string Metadata, string? MessageId = null);

/// <summary>A request as the API creates it, with its tasks and when they become due.</summary>
internal sealed record NewRequest(TransactionalRequest Request, IReadOnlyList<NewTask> Tasks, DateTimeOffset DueAt);

/// <summary>A task its relay accepted: the message id and reply, and when the reply arrived.</summary>
internal sealed record SentTask(Guid Id, string MessageId, string Detail, DateTimeOffset SentAt);

/// <summary>A claimed task on its way to the transport.</summary>
internal sealed record ClaimedTask(Guid Id, Guid RequestId, Guid TenantId, string Email, string EmailKey, string? Name, string Type,
    int Attempts, DateTimeOffset DueAt, string? MessageId = null);

/// <summary>
/// The one owner of the transactional task state machine (docs/send-engine.md "Transactional mail"), like
/// RecipientStore for bulk jobs: every status change of <c>transactional_tasks</c> is a statement here.
/// queued | scheduled → sending (claimed a group at a time) → sent | rejected | unknown; sending → queued (deferred,
/// retried ≤ MaxRetries times, or the transport was down: not an attempt); sending → rejected (suppressed meanwhile);
/// sending → unknown (its dispatcher died); sent → delivered | bounced from ESP events. Rejected and invalid tasks are
/// created final. A request is complete (<c>completed_at</c>) once none of its tasks is open.
/// The dispatchers' queue is <c>transactional_deliveries</c> (<see cref="TransactionalDelivery"/>): an open task has a row
/// there, <c>sending</c> is that row's lease (the task row keeps queued or scheduled meanwhile: <see cref="ShownStatusSql"/>
/// is what readers show), and the task row is written at intake and once more with its final state (or by a retry or an
/// outage), so that the claim, two per task before, touches no index of the wide row.
/// A statement that may have queued webhook messages (events or the seed's callbacks) wakes this process's
/// <see cref="Features.Webhooks.WebhookDispatcher"/> after it committed, as bulk results and ESP events do, so they go out
/// at once rather than at its next poll; the hot statements (created, sent, completed) wake it only when they queued one.
/// </summary>
public sealed class TransactionalTaskStore(NpgsqlDataSource db, TimeProvider clock, WakeSignal<Features.Webhooks.WebhookDispatcher> webhooks)
{
    /// <summary>Statuses a task may still leave by delivery (not final).</summary>
    public const string OpenStatuses = $"'{S.Queued}', '{S.Scheduled}', '{S.Claimed}', '{S.Sending}'";

    /// <summary>
    /// The status to show for task alias <paramref name="t"/>: <c>sending</c> while its delivery row is leased, else the
    /// task row's own.
    /// </summary>
    public static string ShownStatusSql(string t) =>
        $"CASE WHEN EXISTS (SELECT 1 FROM transactional_deliveries d WHERE d.task_id = {t}.id AND d.lease_until IS NOT NULL) THEN '{S.Sending}' ELSE {t}.status END";

    /// <summary>
    /// The message_id to show for task alias <paramref name="t"/>: none while the task is open (it is chosen at creation,
    /// but nothing has been handed over under it yet).
    /// </summary>
    public static string ShownMessageIdSql(string t) => $"CASE WHEN {t}.status IN ({OpenStatuses}) THEN NULL ELSE {t}.message_id END";

    public const string DispatcherDiedDetail = "outcome unknown: the dispatcher stopped during the transaction; not retried to avoid a duplicate";

    /// <summary>
    /// Stores a request and its tasks in one transaction. Returns false when the tenant already has a request with this
    /// Idempotency-Key (a concurrent duplicate: nothing of this one is stored).
    /// </summary>
    internal async Task<bool> CreateAsync(TransactionalRequest r, IReadOnlyList<NewTask> tasks, DateTimeOffset dueAt, CancellationToken ct) =>
        (await CreateManyAsync([new NewRequest(r, tasks, dueAt)], ct)).Contains(r.Id);

    /// <summary>
    /// Stores several requests and their tasks in one transaction (<see cref="TransactionalIntake"/>'s group commit):
    /// two statements in one round trip and one commit, whatever their number. Returns the ids of the requests stored; one
    /// missing had an Idempotency-Key another request of the tenant holds (nothing of it is stored). All or nothing: a
    /// failure stores none of them.
    /// </summary>
    internal async Task<HashSet<Guid>> CreateManyAsync(IReadOnlyList<NewRequest> requests, CancellationToken ct)
    {
        // In the unique index's order, so that two concurrent groups wait for each other's keys in the same order.
        var rs = requests.OrderBy(x => x.Request.TenantId).ThenBy(x => x.Request.IdempotencyKey, StringComparer.Ordinal).ToList();
        var tasks = rs.SelectMany(x => x.Tasks.Select(t => (x.Request, x.DueAt, Task: t))).ToList();
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        // One batch, so one round trip: a batch without a transaction runs as one implicit transaction (all rows or none),
        // and the tasks' statement, which sees the first one's rows, inserts nothing for a request whose key conflicted.
        await using var batch = new NpgsqlBatch(conn);
        batch.BatchCommands.Add(Sql.BatchCommand("""
            INSERT INTO transactional_requests (id, tenant_id, idempotency_key, body_hash, message, metadata, send_at, callback_url,
                callback_type, response, created_at, completed_at)
            SELECT r.id, r.tenant_id, r.idempotency_key, r.body_hash, r.message, r.metadata::jsonb, r.send_at, r.callback_url,
                r.callback_type, r.response::jsonb, r.created_at, r.completed_at
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[],
                $10::text[], $11::timestamptz[], $12::timestamptz[])
                AS r(id, tenant_id, idempotency_key, body_hash, message, metadata, send_at, callback_url, callback_type, response, created_at, completed_at)
            ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id
            """, rs.Select(x => x.Request.Id).ToArray(), rs.Select(x => x.Request.TenantId).ToArray(),
            rs.Select(x => x.Request.IdempotencyKey).ToArray(), rs.Select(x => x.Request.BodyHash).ToArray(),
            rs.Select(x => x.Request.Message).ToArray(), rs.Select(x => x.Request.Metadata).ToArray(), rs.Select(x => x.Request.SendAt).ToArray(),
            rs.Select(x => x.Request.CallbackUrl).ToArray(), rs.Select(x => x.Request.CallbackType).ToArray(),
            rs.Select(x => x.Request.Response).ToArray(), rs.Select(x => x.Request.CreatedAt).ToArray(),
            rs.Select(x => x.Request.CompletedAt).ToArray()));
        // Tasks rejected or invalid at once raise the tenant's "rejected" webhook event in the same statement.
        batch.BatchCommands.Add(Sql.BatchCommand($"""
            WITH recorded AS (
            INSERT INTO transactional_tasks (id, request_id, tenant_id, position, email, email_key, name, type, status, reject_reason,
                attempts, metadata, created_at, finished_at, message_id)
            SELECT t.id, t.request_id, t.tenant_id, t.position, t.email, t.email_key, t.name, t.type, t.status, t.reason, 0,
                t.metadata::jsonb, t.created_at, CASE WHEN t.status IN ('{S.Rejected}', '{S.Invalid}') THEN t.created_at END, t.message_id
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::timestamptz[], $12::text[], $13::timestamptz[], $16::text[])
                AS t(id, request_id, tenant_id, position, email, email_key, name, type, status, reason, due_at, metadata, created_at, message_id)
            WHERE EXISTS (SELECT 1 FROM transactional_requests r WHERE r.id = t.request_id)
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position),
            queue AS (
            INSERT INTO transactional_deliveries (task_id, due_at, attempts)
            SELECT q.id, q.due_at, 0 FROM unnest($1::uuid[], $11::timestamptz[]) AS q(id, due_at)
            JOIN recorded x ON x.id = q.id WHERE x.status IN ('{S.Queued}', '{S.Scheduled}')),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$14", $"x.status IN ('{S.Rejected}', '{S.Invalid}')")},
            events AS ({Features.Webhooks.WebhookPublisher.TransactionalEventsSql(WebhookEventTypes.Rejected, "$14", $"x.status IN ('{S.Rejected}', '{S.Invalid}')")} RETURNING 0),
            done AS (SELECT id, tenant_id, callback_url, callback_type FROM transactional_requests WHERE id = ANY($15) AND completed_at IS NOT NULL)
            {Features.Webhooks.WebhookPublisher.RequestCallbackSql("$14", "recorded")}
            """,
            tasks.Select(x => x.Task.Id).ToArray(), tasks.Select(x => x.Request.Id).ToArray(), tasks.Select(x => x.Request.TenantId).ToArray(),
            tasks.Select(x => x.Task.Position).ToArray(), tasks.Select(x => x.Task.Email).ToArray(), tasks.Select(x => x.Task.EmailKey).ToArray(),
            tasks.Select(x => x.Task.Name).ToArray(), tasks.Select(x => x.Task.Type).ToArray(), tasks.Select(x => x.Task.Status).ToArray(),
            tasks.Select(x => x.Task.RejectReason).ToArray(), tasks.Select(x => x.DueAt).ToArray(), tasks.Select(x => x.Task.Metadata).ToArray(),
            tasks.Select(x => x.Request.CreatedAt).ToArray(), now, rs.Select(x => x.Request.Id).ToArray(), tasks.Select(x => x.Task.MessageId).ToArray()));
        var stored = new HashSet<Guid>();
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                stored.Add(reader.GetGuid(0));
            }
            while (await reader.NextResultAsync(ct))
            {
            }
        }
        if (rs.Any(x => stored.Contains(x.Request.Id) && x.Tasks.Any(t => t.Status is S.Rejected or S.Invalid)))
        {
            webhooks.Notify(); // their rejected events and callbacks
        }
        return stored;
    }

    /// <summary>
    /// Tasks whose dispatcher died (their delivery's lease ran out): sending → unknown, the message may have gone out.
    /// Their delivery rows go, as do rows whose task no longer exists. Returns the requests touched.
    /// </summary>
    internal async Task<List<Guid>> RecoverExpiredAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var requests = new List<Guid>();
        await using var conn = await db.OpenConnectionAsync(ct);
        // due_at ≤ the claim < lease_until: the condition on due_at is implied, and lets the due index find the rows.
        await using var cmd = Sql.Command(conn, $"""
            WITH expired AS (
            DELETE FROM transactional_deliveries WHERE due_at <= $1 AND lease_until < $1 RETURNING task_id),
            recorded AS (
            UPDATE transactional_tasks SET status = '{S.Unknown}', detail = $2, finished_at = $1
            WHERE id IN (SELECT task_id FROM expired) AND status IN ({OpenStatuses})
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$1")}
            SELECT request_id FROM recorded
            """, now, DispatcherDiedDetail);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            requests.Add(reader.GetGuid(0));
        }
        if (requests.Count > 0)
        {
            webhooks.Notify(); // recipient callbacks of the tasks now unknown
        }
        return requests;
    }

    /// <summary>
    /// queued | scheduled → sending for a group of due tasks, oldest due first, skipping rows other dispatchers hold:
    /// committed before the transport is called for any of them, the durable record that their attempts started (so a
    /// dispatcher that dies leaves at most a group unknown, never sent twice). The mark is the lease of each task's
    /// delivery row, a column in no index: a HOT update of a small row; the task row is only read.
    /// </summary>
    internal async Task<List<ClaimedTask>> ClaimAsync(int limit, TimeSpan lease, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var until = now + lease;
        var claimed = new List<ClaimedTask>();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            WITH due AS (
                SELECT task_id FROM transactional_deliveries
                WHERE due_at <= $1 AND lease_until IS NULL
                ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED),
            leased AS (
                UPDATE transactional_deliveries d SET lease_until = $3
                FROM due WHERE d.task_id = due.task_id
                RETURNING d.task_id, d.attempts, d.due_at)
            SELECT t.id, t.request_id, t.tenant_id, t.email, t.email_key, t.name, t.type, l.attempts, l.due_at, t.message_id
            FROM leased l JOIN transactional_tasks t ON t.id = l.task_id
            """, now, limit, until);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            claimed.Add(new ClaimedTask(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetString(6), reader.GetInt32(7),
                reader.GetFieldValue<DateTimeOffset>(8), reader.IsDBNull(9) ? null : reader.GetString(9)));
        }
        return claimed;
    }

    /// <summary>The tasks of the requests in <c>done</c> as they are after <c>recorded</c> (the statement's own writes are not visible to it).</summary>
    private const string CompletedTasksSql = """
        (SELECT id, request_id, email, status, reject_reason, position FROM recorded
         UNION ALL
         SELECT id, request_id, email, status, reject_reason, position FROM transactional_tasks
         WHERE request_id IN (SELECT id FROM done) AND id <> ALL (ARRAY(SELECT id FROM recorded)))
        """;

    /// <summary>
    /// sending → sent for the tasks of a group in one statement (one commit), each with the time its relay's answer
    /// arrived as sent_at; and, in the same statement, completed_at (with the request callback) for each of their requests
    /// that has no other open task: a one-recipient request is complete here rather than in a
    /// <see cref="CompleteRequestsAsync"/> of its own. Returns the requests completed.
    /// </summary>
    /// <remarks>
    /// The statement sees the tasks it records with their old status (one snapshot), so they are left out of the open-task
    /// check by id. Two dispatchers recording the last tasks of one request at the same moment each see the other's as
    /// open: neither completes it here, and the <see cref="CompleteRequestsAsync"/> each runs after its commit does (the
    /// later one sees both). Both completing is impossible: the second waits for the first's row lock and then finds
    /// completed_at set. The check is a correlated subquery per request (the request_id index), not an anti-join that a
    /// plan cached while the table was small could turn into a scan of every task.
    /// </remarks>
    internal async Task<HashSet<Guid>> RecordSentAsync(IReadOnlyList<SentTask> sent, CancellationToken ct)
    {
        var completed = new HashSet<Guid>();
        if (sent.Count == 0)
        {
            return completed;
        }
        long queued;
        await using (var conn = await db.OpenConnectionAsync(ct))
        await using (var cmd = Sql.Command(conn, $"""
            WITH dequeued AS (
            DELETE FROM transactional_deliveries WHERE task_id = ANY($1) AND lease_until IS NOT NULL RETURNING task_id),
            recorded AS (
            UPDATE transactional_tasks t SET status = '{S.Sent}', message_id = g.message_id, detail = left(g.detail, 1000),
                attempts = t.attempts + 1, sent_at = g.sent_at, finished_at = g.sent_at
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS g(id, message_id, detail, sent_at)
            JOIN dequeued ON dequeued.task_id = g.id
            WHERE t.id = g.id AND t.status IN ({OpenStatuses})
            RETURNING t.id, t.request_id, t.tenant_id, t.email, t.message_id, t.reject_reason, t.detail, t.status, t.position),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$5")},
            events AS ({Features.Webhooks.WebhookPublisher.TransactionalEventsSql(WebhookEventTypes.Sent, "$5")} RETURNING 0),
            done AS (
            UPDATE transactional_requests r SET completed_at = $5
            WHERE r.id IN (SELECT request_id FROM recorded) AND r.completed_at IS NULL
              AND (SELECT count(*) FROM transactional_tasks o
                   WHERE o.request_id = r.id AND o.status IN ({OpenStatuses}) AND o.id <> ALL (ARRAY(SELECT id FROM recorded))) = 0
            RETURNING r.id, r.tenant_id, r.callback_url, r.callback_type),
            request_callbacks AS ({Features.Webhooks.WebhookPublisher.RequestCallbackSql("$5", CompletedTasksSql)} RETURNING 0)
            SELECT (SELECT count(*) FROM recipient_callbacks) + (SELECT count(*) FROM events) + (SELECT count(*) FROM request_callbacks),
                ARRAY(SELECT id FROM done)
            """, sent.Select(x => x.Id).ToArray(), sent.Select(x => x.MessageId).ToArray(), sent.Select(x => x.Detail).ToArray(),
            sent.Select(x => x.SentAt).ToArray(), clock.GetUtcNow()))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            queued = reader.GetInt64(0);
            completed.UnionWith(reader.GetFieldValue<Guid[]>(1));
        }
        if (queued > 0)
        {
            webhooks.Notify();
        }
        return completed;
    }

    /// <summary>sending → unknown: handed over, no answer; never retried.</summary>
    internal async Task RecordUnknownAsync(Guid id, string? messageId, string detail, CancellationToken ct)
    {
        await Sql.ExecuteAsync(db, $"""
            WITH done AS (
            DELETE FROM transactional_deliveries WHERE task_id = $1 AND lease_until IS NOT NULL RETURNING task_id),
            recorded AS (
            UPDATE transactional_tasks SET status = '{S.Unknown}', message_id = $2, detail = left($3, 1000), attempts = attempts + 1,
                finished_at = $4
            WHERE id IN (SELECT task_id FROM done) AND status IN ({OpenStatuses})
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$4")}
            SELECT count(*) FROM recorded
            """, ct, id, (object?)messageId ?? DBNull.Value, detail, clock.GetUtcNow());
        webhooks.Notify(); // rare outcomes: not worth counting what they queued
    }

    /// <summary>sending → rejected (refused by the server, out of retries, or suppressed meanwhile).</summary>
    internal async Task RecordRejectedAsync(Guid id, string reason, string detail, bool attempted, CancellationToken ct)
    {
        await Sql.ExecuteAsync(db, $"""
            WITH done AS (
            DELETE FROM transactional_deliveries WHERE task_id = $1 AND lease_until IS NOT NULL RETURNING task_id),
            recorded AS (
            UPDATE transactional_tasks SET status = '{S.Rejected}', reject_reason = $2, detail = left($3, 1000), message_id = NULL,
                attempts = attempts + CASE WHEN $4 THEN 1 ELSE 0 END, finished_at = $5
            WHERE id IN (SELECT task_id FROM done) AND status IN ({OpenStatuses})
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$5")}
            {Features.Webhooks.WebhookPublisher.TransactionalEventsSql(WebhookEventTypes.Rejected, "$5")}
            """, ct, id, reason, detail, attempted, clock.GetUtcNow());
        webhooks.Notify(); // rare outcomes: not worth counting what they queued
    }

    /// <summary>sending → queued: a transient refusal, retried at <paramref name="dueAt"/> (an attempt).</summary>
    internal async Task RecordDeferredAsync(Guid id, string detail, DateTimeOffset dueAt, CancellationToken ct)
    {
        await Sql.ExecuteAsync(db, $"""
            WITH requeued AS (
            UPDATE transactional_deliveries SET lease_until = NULL, due_at = $3, attempts = attempts + 1
            WHERE task_id = $1 AND lease_until IS NOT NULL RETURNING task_id),
            recorded AS (
            UPDATE transactional_tasks SET status = '{S.Queued}', detail = left($2, 1000), attempts = attempts + 1
            WHERE id IN (SELECT task_id FROM requeued) AND status IN ({OpenStatuses})
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position)
            {Features.Webhooks.WebhookPublisher.TransactionalEventsSql(WebhookEventTypes.Deferred, "$4")}
            """, ct, id, detail, dueAt, clock.GetUtcNow());
        webhooks.Notify(); // rare outcomes: not worth counting what they queued
    }

    /// <summary>
    /// sending → queued without counting an attempt: the transport was unavailable, nothing was handed over (the task row
    /// is written only to say why, when there is a why: a dispatcher stopping gives its group back without one).
    /// </summary>
    internal Task ReleaseAsync(Guid[] ids, string? detail, DateTimeOffset dueAt, CancellationToken ct) =>
        ids.Length == 0 ? Task.CompletedTask : Sql.ExecuteAsync(db, $"""
            WITH released AS (
            UPDATE transactional_deliveries SET lease_until = NULL, due_at = $3
            WHERE task_id = ANY($1) AND lease_until IS NOT NULL RETURNING task_id)
            UPDATE transactional_tasks SET status = '{S.Queued}', detail = left($2, 1000)
            WHERE $2::text IS NOT NULL AND id IN (SELECT task_id FROM released) AND status IN ({OpenStatuses})
            """, ct, ids, (object?)detail ?? DBNull.Value, dueAt);

    /// <summary>
    /// Sets completed_at on those of <paramref name="requestIds"/> with no open task left: where the seed's request
    /// callback becomes due. Returns the requests completed by this call.
    /// </summary>
    internal async Task CompleteRequestsAsync(Guid[] requestIds, CancellationToken ct)
    {
        if (requestIds.Length == 0)
        {
            return;
        }
        // The statement's count is the request callbacks it queued. The open-task check is a subquery per request (the
        // request_id index), not an anti-join: a plan cached while the table was small scanned every task at each call.
        var queued = await Sql.ExecuteAsync(db, $"""
            WITH done AS (
            UPDATE transactional_requests r SET completed_at = $2
            WHERE r.id = ANY($1) AND r.completed_at IS NULL
              AND (SELECT count(*) FROM transactional_tasks t WHERE t.request_id = r.id AND t.status IN ({OpenStatuses})) = 0
            RETURNING r.id, r.tenant_id, r.callback_url, r.callback_type)
            {Features.Webhooks.WebhookPublisher.RequestCallbackSql("$2")}
            """, ct, requestIds, clock.GetUtcNow());
        if (queued > 0)
        {
            webhooks.Notify();
        }
    }

    /// <summary>sent → delivered (an ESP's delivery event), inside the event's transaction.</summary>
    internal static Task MarkDeliveredAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid id, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"UPDATE transactional_tasks SET status = '{S.Delivered}' WHERE id = $1 AND status = '{S.Sent}'", ct, id);

    /// <summary>sent → rejected: the ESP accepted the request and then refused the message (inside the event's transaction).</summary>
    internal static Task MarkRejectedByEspAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid id, string detail, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"""
            UPDATE transactional_tasks SET status = '{S.Rejected}', reject_reason = '{EmailRejectReasons.Rule}', detail = left($2, 1000)
            WHERE id = $1 AND status = '{S.Sent}'
            """, ct, id, detail);

    /// <summary>sent | delivered → bounced (an ESP's hard bounce), inside the event's transaction.</summary>
    internal static Task MarkBouncedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid id, string detail, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"""
            UPDATE transactional_tasks SET status = '{S.Bounced}', reject_reason = '{EmailRejectReasons.HardBounce}', detail = left($2, 1000)
            WHERE id = $1 AND status IN ('{S.Sent}', '{S.Delivered}')
            """, ct, id, detail);
}
