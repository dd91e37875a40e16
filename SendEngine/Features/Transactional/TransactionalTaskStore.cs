using Newsletter.Contracts.Webhooks;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;
using S = Newsletter.Contracts.Transactional.EmailTaskStatuses;

namespace SendEngine.Features.Transactional;

/// <summary>A task as the API creates it.</summary>
/// <remarks>
/// <see cref="SuppressionMarker"/>: the erased marker of <see cref="EmailKey"/> (a suppression of an erased address is
/// stored under it), looked up with the address itself when the task is stored; null for an address that is a marker.
/// </remarks>
internal sealed record NewTask(Guid Id, int Position, string Email, string EmailKey, string? Name, string Type, string Status,
    string? RejectReason, string Metadata, string? MessageId = null, string? SuppressionMarker = null);

/// <summary>A request as the API creates it, with its tasks and when they become due.</summary>
internal sealed record NewRequest(TransactionalRequest Request, IReadOnlyList<NewTask> Tasks, DateTimeOffset DueAt);

/// <summary>What became of a request handed to <see cref="TransactionalTaskStore.CreateManyAsync"/>.</summary>
internal enum StoreOutcome
{
    /// <summary>Stored with its tasks.</summary>
    Stored,
    /// <summary>Not stored: the tenant already has a request with this Idempotency-Key.</summary>
    Duplicate,
    /// <summary>Not stored: an operator paused the tenant's transactional mail.</summary>
    Paused,
}

/// <summary>The outcome, and for a stored request its tasks as stored (a suppressed recipient rejected with its reason).</summary>
internal sealed record StoredRequest(StoreOutcome Outcome, IReadOnlyList<NewTask> Tasks);

/// <summary>A task its relay accepted: the message id and reply, and when the reply arrived.</summary>
internal sealed record SentTask(Guid Id, string MessageId, string Detail, DateTimeOffset SentAt);

/// <summary>
/// A claimed task on its way to the transport; <see cref="RequestMessage"/> is its request's stored message on one task
/// of each request in a claim (null on the others, and when the request is gone).
/// </summary>
internal sealed record ClaimedTask(Guid Id, Guid RequestId, Guid TenantId, string Email, string EmailKey, string? Name, string Type,
    int Attempts, DateTimeOffset DueAt, string? MessageId = null, string? RequestMessage = null);

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
/// The dispatchers' claim, records, completion and recovery run on <c>dispatch</c>, whose connections plan each
/// statement once and read through an index wherever one serves: the records find their rows by arrays of ids in tables
/// that grow from empty, where a generic plan cached while the tasks table was small kept scanning all of it at each
/// record, and planning each execution instead cost as much as executing; the claim takes the first due rows in the due
/// index's order, the one plan that stays cheap with a backlog (docs/send-engine.md "Transactional mail"). The
/// intake's statement (its own arrays and index look-ups) keeps the shared pool's default.
/// </summary>
public sealed class TransactionalTaskStore(
    NpgsqlDataSource db,
    [FromKeyedServices(Extensions.DataExtensions.GenericPlans)] NpgsqlDataSource dispatch,
    TimeProvider clock,
    WakeSignal<Features.Webhooks.WebhookDispatcher> webhooks)
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
    /// Stores a request and its tasks in one transaction, deciding on the way whether the tenant is paused and which
    /// recipients are suppressed (<see cref="CreateManyAsync"/>).
    /// </summary>
    internal async Task<StoredRequest> CreateAsync(TransactionalRequest r, IReadOnlyList<NewTask> tasks, DateTimeOffset dueAt, CancellationToken ct) =>
        (await CreateManyAsync([new NewRequest(r, tasks, dueAt)], ct))[r.Id];

    /// <summary>
    /// Stores several requests and their tasks (<see cref="TransactionalIntake"/>'s group commit) in one statement, so one
    /// round trip and one commit whatever their number, and the request's only round trip: the same statement reads the
    /// tenants' pause flag (a paused tenant's request stores nothing) and the suppressions of the recipients still
    /// queued or scheduled (each such task is stored rejected with its reason and without a Message-ID), and builds each
    /// request's stored answer from the statuses it decided. One snapshot for all of it: the stored answer, the tasks and
    /// what this returns agree. Returns, per request id, whether it was stored (with its tasks' final statuses at
    /// creation), refused because the tenant is paused, or not stored because the tenant already has a request with its
    /// Idempotency-Key. All or nothing: a failure stores none of them.
    /// </summary>
    internal async Task<Dictionary<Guid, StoredRequest>> CreateManyAsync(IReadOnlyList<NewRequest> requests, CancellationToken ct)
    {
        // In the unique index's order, so that two concurrent groups wait for each other's keys in the same order.
        var rs = requests.OrderBy(x => x.Request.TenantId).ThenBy(x => x.Request.IdempotencyKey, StringComparer.Ordinal).ToList();
        var tasks = rs.SelectMany(x => x.Tasks.Select(t => (x.Request, x.DueAt, Task: t))).ToList();
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        // planned: each task's status at creation (one suppression look-up per task still to send, by its address and by
        // the erased marker of it). req: the requests of tenants not paused, with the answer built from planned (jsonb:
        // the replay re-serializes it). The tasks and their queue rows only for requests req stored (an Idempotency-Key
        // that conflicted stores nothing); their foreign key to req's rows is checked at the statement's end, when they exist.
        // Tasks rejected or invalid at once raise the tenant's "rejected" webhook event and the seed's callbacks here too.
        await using var cmd = Sql.Command(conn, $"""
            WITH planned AS (
            SELECT i.id, i.request_id, i.tenant_id, i.position, i.email, i.email_key, i.name, i.type, i.due_at, i.metadata, i.created_at,
                CASE WHEN s.reason IS NULL THEN i.status ELSE '{S.Rejected}' END AS status,
                CASE WHEN s.reason IS NULL THEN i.reason ELSE {TransactionalDispatcher.RejectReasonSql("s.reason")} END AS reason,
                CASE WHEN s.reason IS NULL THEN i.message_id END AS message_id
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::timestamptz[], $12::text[], $13::timestamptz[], $14::text[], $15::text[])
                AS i(id, request_id, tenant_id, position, email, email_key, name, type, status, reason, due_at, metadata, created_at, message_id, marker)
            LEFT JOIN LATERAL (
                SELECT x.reason FROM suppressions x
                WHERE i.status IN ('{S.Queued}', '{S.Scheduled}') AND x.tenant_id = i.tenant_id AND x.email IN (i.email_key, i.marker)
                LIMIT 1) s ON true),
            answers AS (
            SELECT request_id, jsonb_agg(jsonb_build_object('email', email, 'status', status, 'reject_reason', reason,
                    'task_id', replace(id::text, '-', '')) ORDER BY position) AS tasks,
                count(*) FILTER (WHERE status IN ('{S.Queued}', '{S.Scheduled}')) AS open
            FROM planned GROUP BY request_id),
            paused AS (
            SELECT tenant_id FROM tenant_reputation WHERE tenant_id = ANY($17) AND transactional_paused),
            req AS (
            INSERT INTO transactional_requests (id, tenant_id, idempotency_key, body_hash, message, metadata, send_at, callback_url,
                callback_type, response, created_at, completed_at)
            SELECT r.id, r.tenant_id, r.idempotency_key, r.body_hash, r.message, r.metadata::jsonb, r.send_at, r.callback_url,
                r.callback_type, jsonb_build_object('request_id', replace(r.id::text, '-', ''), 'tasks', coalesce(a.tasks, '[]'::jsonb)),
                r.created_at, CASE WHEN coalesce(a.open, 0) = 0 THEN r.created_at END
            FROM unnest($16::uuid[], $17::uuid[], $18::text[], $19::bytea[], $20::text[], $21::text[], $22::timestamptz[], $23::text[], $24::text[],
                $25::timestamptz[])
                AS r(id, tenant_id, idempotency_key, body_hash, message, metadata, send_at, callback_url, callback_type, created_at)
            LEFT JOIN answers a ON a.request_id = r.id
            WHERE r.tenant_id NOT IN (SELECT tenant_id FROM paused)
            ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id, tenant_id, callback_url, callback_type, completed_at),
            recorded AS (
            INSERT INTO transactional_tasks (id, request_id, tenant_id, position, email, email_key, name, type, status, reject_reason,
                attempts, metadata, created_at, finished_at, message_id)
            SELECT t.id, t.request_id, t.tenant_id, t.position, t.email, t.email_key, t.name, t.type, t.status, t.reason, 0,
                t.metadata::jsonb, t.created_at, CASE WHEN t.status IN ('{S.Rejected}', '{S.Invalid}') THEN t.created_at END, t.message_id
            FROM planned t JOIN req ON req.id = t.request_id
            RETURNING id, request_id, tenant_id, email, message_id, reject_reason, detail, status, position),
            queue AS (
            INSERT INTO transactional_deliveries (task_id, due_at, attempts)
            SELECT t.id, t.due_at, 0 FROM planned t JOIN req ON req.id = t.request_id WHERE t.status IN ('{S.Queued}', '{S.Scheduled}')),
            {Features.Webhooks.WebhookPublisher.RecipientCallbackCte("$26", $"x.status IN ('{S.Rejected}', '{S.Invalid}')", requests: "req")},
            events AS ({Features.Webhooks.WebhookPublisher.TransactionalEventsSql(WebhookEventTypes.Rejected, "$26", $"x.status IN ('{S.Rejected}', '{S.Invalid}')")} RETURNING 0),
            done AS (SELECT id, tenant_id, callback_url, callback_type FROM req WHERE completed_at IS NOT NULL),
            request_callbacks AS ({Features.Webhooks.WebhookPublisher.RequestCallbackSql("$26", "recorded")} RETURNING 0)
            SELECT 0, id, status, reason FROM planned
            UNION ALL SELECT 1, id, NULL, NULL FROM req
            UNION ALL SELECT 2, tenant_id, NULL, NULL FROM paused
            """,
            tasks.Select(x => x.Task.Id).ToArray(), tasks.Select(x => x.Request.Id).ToArray(), tasks.Select(x => x.Request.TenantId).ToArray(),
            tasks.Select(x => x.Task.Position).ToArray(), tasks.Select(x => x.Task.Email).ToArray(), tasks.Select(x => x.Task.EmailKey).ToArray(),
            tasks.Select(x => x.Task.Name).ToArray(), tasks.Select(x => x.Task.Type).ToArray(), tasks.Select(x => x.Task.Status).ToArray(),
            tasks.Select(x => x.Task.RejectReason).ToArray(), tasks.Select(x => x.DueAt).ToArray(), tasks.Select(x => x.Task.Metadata).ToArray(),
            tasks.Select(x => x.Request.CreatedAt).ToArray(), tasks.Select(x => x.Task.MessageId).ToArray(),
            tasks.Select(x => x.Task.SuppressionMarker).ToArray(),
            rs.Select(x => x.Request.Id).ToArray(), rs.Select(x => x.Request.TenantId).ToArray(),
            rs.Select(x => x.Request.IdempotencyKey).ToArray(), rs.Select(x => x.Request.BodyHash).ToArray(),
            rs.Select(x => x.Request.Message).ToArray(), rs.Select(x => x.Request.Metadata).ToArray(), rs.Select(x => x.Request.SendAt).ToArray(),
            rs.Select(x => x.Request.CallbackUrl).ToArray(), rs.Select(x => x.Request.CallbackType).ToArray(),
            rs.Select(x => x.Request.CreatedAt).ToArray(), now);
        var decided = new Dictionary<Guid, (string Status, string? Reason)>(tasks.Count);
        var stored = new HashSet<Guid>();
        var paused = new HashSet<Guid>();
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                var id = reader.GetGuid(1);
                switch (reader.GetInt32(0))
                {
                    case 0:
                        decided[id] = (reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3));
                        break;
                    case 1:
                        stored.Add(id);
                        break;
                    default:
                        paused.Add(id);
                        break;
                }
            }
        }
        var result = new Dictionary<Guid, StoredRequest>(rs.Count);
        var rejected = false;
        foreach (var x in rs)
        {
            if (paused.Contains(x.Request.TenantId))
            {
                result[x.Request.Id] = new StoredRequest(StoreOutcome.Paused, []);
                continue;
            }
            if (!stored.Contains(x.Request.Id))
            {
                result[x.Request.Id] = new StoredRequest(StoreOutcome.Duplicate, []);
                continue;
            }
            var final = x.Tasks.Select(t => decided[t.Id] is var (status, reason) && status == t.Status ? t
                : t with { Status = status, RejectReason = reason, MessageId = null }).ToList();
            rejected |= final.Any(t => t.Status is S.Rejected or S.Invalid);
            result[x.Request.Id] = new StoredRequest(StoreOutcome.Stored, final);
        }
        if (rejected)
        {
            webhooks.Notify(); // their rejected events and callbacks
        }
        return result;
    }

    /// <summary>
    /// Tasks whose dispatcher died (their delivery's lease ran out): sending → unknown, the message may have gone out.
    /// Their delivery rows go, as do rows whose task no longer exists. Returns the requests touched.
    /// </summary>
    internal async Task<List<Guid>> RecoverExpiredAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var requests = new List<Guid>();
        await using var conn = await dispatch.OpenConnectionAsync(ct);
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
    /// <see cref="ClaimAsync"/>'s statement. $1 now, $2 the group's size, $3 the lease's end. A parameter, not a constant,
    /// for the size: with a constant LIMIT, a generic plan made when few rows were due read every due row and sorted them.
    /// </summary>
    internal const string ClaimSql = """
        WITH due AS (
            SELECT task_id FROM transactional_deliveries
            WHERE due_at <= $1 AND lease_until IS NULL
            ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED),
        leased AS (
            UPDATE transactional_deliveries d SET lease_until = $3
            FROM due WHERE d.task_id = due.task_id
            RETURNING d.task_id, d.attempts, d.due_at)
        SELECT t.id, t.request_id, t.tenant_id, t.email, t.email_key, t.name, t.type, l.attempts, l.due_at, t.message_id,
            CASE WHEN row_number() OVER (PARTITION BY t.request_id ORDER BY t.id) = 1 THEN r.message END
        FROM leased l JOIN transactional_tasks t ON t.id = l.task_id LEFT JOIN transactional_requests r ON r.id = t.request_id
        """;

    /// <summary>
    /// queued | scheduled → sending for a group of due tasks, oldest due first, skipping rows other dispatchers hold:
    /// committed before the transport is called for any of them, the durable record that their attempts started (so a
    /// dispatcher that dies leaves at most a group unknown, never sent twice). The mark is the lease of each task's
    /// delivery row, a column in no index: a HOT update of a small row; the task row is only read, and so is each request's
    /// message (once per request in the group: the dispatcher composes from it), which was a statement of its own.
    /// </summary>
    internal async Task<List<ClaimedTask>> ClaimAsync(int limit, TimeSpan lease, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var until = now + lease;
        var claimed = new List<ClaimedTask>();
        await using var conn = await dispatch.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, ClaimSql, now, limit, until);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            claimed.Add(new ClaimedTask(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetString(6), reader.GetInt32(7),
                reader.GetFieldValue<DateTimeOffset>(8), reader.IsDBNull(9) ? null : reader.GetString(9), reader.IsDBNull(10) ? null : reader.GetString(10)));
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
        await using (var conn = await dispatch.OpenConnectionAsync(ct))
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
        await Sql.ExecuteAsync(dispatch, $"""
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
        await Sql.ExecuteAsync(dispatch, $"""
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
        await Sql.ExecuteAsync(dispatch, $"""
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
        ids.Length == 0 ? Task.CompletedTask : Sql.ExecuteAsync(dispatch, $"""
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
        var queued = await Sql.ExecuteAsync(dispatch, $"""
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
