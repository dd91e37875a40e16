using System.Text.Json;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// Queues events for tenants' endpoints, inside the caller's transaction, so an event exists exactly when the change
/// that caused it committed. Writes only for tenants with an enabled endpoint wanting that type: the subscribed types
/// are cached per tenant (<see cref="EventWebhookOptions.SubscriptionCacheTtl"/>; this process's own endpoint changes
/// clear the entry at once), so a tenant without endpoints costs a memory look-up and no row.
/// </summary>
public sealed class WebhookPublisher(NpgsqlDataSource db, IMemoryCache cache, IOptions<EventWebhookOptions> options, WakeSignal<WebhookDispatcher> signal)
{
    /// <summary>
    /// The outbox insert of one event for every enabled endpoint of the tenant that wants its type. $1 tenant, $2 type,
    /// $3 data (jsonb), $4 now. The body is built here once; it is the exact text signed and sent on every attempt.
    /// </summary>
    private const string InsertSql = """
        INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, e.tenant_id, $2,
            jsonb_build_object('type', $2::text, 'timestamp', $4::timestamptz, 'data', $3::jsonb)::text, 'pending', 0, $4, $4, false
        FROM webhook_endpoints e WHERE e.tenant_id = $1 AND e.state = 'enabled' AND $2 = ANY(e.event_types)
        """;

    /// <summary>The event types a bulk delivery result can raise.</summary>
    public static readonly IReadOnlySet<string> BulkResultTypes = new HashSet<string>(StringComparer.Ordinal)
        { WebhookEventTypes.Sent, WebhookEventTypes.Deferred, WebhookEventTypes.Rejected };

    /// <summary>
    /// The second half of the ledger's statement (RecipientStore.RecordResultsAndEventsSql): one message per recorded
    /// result and wanting endpoint. sent → sent, back to pending (a temporary refusal) → deferred, failed (a permanent
    /// one) → rejected; unknown raises nothing. $6 now, $8 the job's tenant; <c>recorded</c> is the updated rows.
    /// </summary>
    public const string BulkResultEventsSql = """
        INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, e.tenant_id, t.type,
            jsonb_build_object('type', t.type, 'timestamp', $6::timestamptz, 'data', jsonb_build_object('source', 'bulk', 'job_id', x.job_id,
                'recipient_id', x.id, 'email', x.email, 'message_id', x.message_id, 'detail', x.detail))::text,
            'pending', 0, $6, $6, false
        FROM recorded x
        CROSS JOIN LATERAL (SELECT CASE x.status WHEN 'sent' THEN 'sent' WHEN 'pending' THEN 'deferred' WHEN 'failed' THEN 'rejected' END AS type) t
        JOIN webhook_endpoints e ON e.tenant_id = $8 AND e.state = 'enabled' AND t.type = ANY(e.event_types)
        """;

    /// <summary>
    /// The second half of a transactional task statement (TransactionalTaskStore): one <paramref name="eventType"/>
    /// message per task in <c>recorded</c> (columns id, request_id, tenant_id, email, message_id, reject_reason, detail,
    /// status) and wanting endpoint, in the same statement as the status change. <paramref name="now"/> names the
    /// statement's timestamp parameter; <paramref name="where"/> filters the recorded rows.
    /// </summary>
    public static string TransactionalEventsSql(string eventType, string now, string where = "true") => $"""
        INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, e.tenant_id, '{eventType}',
            jsonb_build_object('type', '{eventType}', 'timestamp', {now}::timestamptz, 'data', jsonb_build_object('source', 'transactional',
                'task_id', replace(x.id::text, '-', ''), 'request_id', replace(x.request_id::text, '-', ''), 'email', x.email,
                'message_id', x.message_id, 'reject_reason', x.reject_reason, 'detail', x.detail))::text,
            'pending', 0, {now}, {now}, false
        FROM recorded x JOIN webhook_endpoints e ON e.tenant_id = x.tenant_id AND e.state = 'enabled' AND '{eventType}' = ANY(e.event_types)
        WHERE {where}
        """;

    /// <summary>The event_type of the seed's per-request callbacks in the outbox (they ignore the endpoint's event types).</summary>
    public const string RecipientCallback = "callback.recipient";
    public const string RequestCallback = "callback.request";

    /// <summary>
    /// A CTE (<c>recipient_callbacks</c>) queuing the seed's <c>recipient</c> callback for each task in <c>recorded</c> that
    /// reached a final status, when its request asked for one: the body exactly as seed 003 shows it ({email, task_id,
    /// status, reject_reason}, json_build_object keeps that order). The callback goes to the tenant's enabled endpoint
    /// whose url is the callback url, signed with that endpoint's secret (an unregistered url gets no call: there is no
    /// secret to sign with and it never passed the SSRF check). <paramref name="requests"/> is where the requests' callback
    /// is read: the table, or a CTE of the same statement that inserted them (its rows are not in the table's snapshot).
    /// </summary>
    public static string RecipientCallbackCte(string now, string where = "true", string requests = "transactional_requests") => $"""
        recipient_callbacks AS (
            INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, e.tenant_id, '{RecipientCallback}',
                json_build_object('email', x.email, 'task_id', replace(x.id::text, '-', ''), 'status', x.status, 'reject_reason', x.reject_reason)::text,
                'pending', 0, {now}, {now}, false
            FROM recorded x
            JOIN {requests} r ON r.id = x.request_id AND r.callback_type = 'recipient'
            JOIN webhook_endpoints e ON e.tenant_id = x.tenant_id AND e.url = r.callback_url AND e.state = 'enabled'
            WHERE {where}
            RETURNING 0)
        """;

    /// <summary>
    /// The insert queuing the seed's <c>request</c> callback for each request in <c>done</c> (columns id, tenant_id,
    /// callback_url, callback_type) that asked for one: {request_id, tasks[{email, task_id, status, reject_reason}]},
    /// the tasks in request order, read from <paramref name="tasks"/> (the table, or a CTE of the same statement).
    /// </summary>
    public static string RequestCallbackSql(string now, string tasks = "transactional_tasks") => $"""
        INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, e.tenant_id, '{RequestCallback}',
            json_build_object('request_id', replace(d.id::text, '-', ''), 'tasks', (
                SELECT json_agg(json_build_object('email', t.email, 'task_id', replace(t.id::text, '-', ''), 'status', t.status,
                    'reject_reason', t.reject_reason) ORDER BY t.position)
                FROM {tasks} t WHERE t.request_id = d.id))::text,
            'pending', 0, {now}, {now}, false
        FROM done d
        JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.url = d.callback_url AND e.state = 'enabled'
        WHERE d.callback_type = 'request'
        """;

    /// <summary>The event types the tenant's enabled endpoints want (cached).</summary>
    public async ValueTask<IReadOnlySet<string>> SubscribedTypesAsync(Guid tenantId, CancellationToken ct)
    {
        if (cache.TryGetValue(CacheKey(tenantId), out IReadOnlySet<string>? types) && types is not null)
        {
            return types;
        }
        await using var cmd = db.CreateCommand("SELECT DISTINCT unnest(event_types) FROM webhook_endpoints WHERE tenant_id = $1 AND state = 'enabled'");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        var set = new HashSet<string>(StringComparer.Ordinal);
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                set.Add(reader.GetString(0));
            }
        }
        if (options.Value.SubscriptionCacheTtl > TimeSpan.Zero)
        {
            using var entry = cache.CreateEntry(CacheKey(tenantId));
            entry.Value = set;
            entry.Size = 1;
            entry.AbsoluteExpirationRelativeToNow = options.Value.SubscriptionCacheTtl;
        }
        return set;
    }

    /// <summary>Forgets the tenant's cached types (its endpoints changed in this process).</summary>
    public void Invalidate(Guid tenantId) => cache.Remove(CacheKey(tenantId));

    /// <summary>
    /// Queues one event of <paramref name="eventType"/> (<see cref="WebhookEventTypes"/>) with <paramref name="data"/>
    /// (serialised as the body's <c>data</c>) in <paramref name="tx"/>, for every endpoint of the tenant that wants it.
    /// Returns how many messages were queued; call <see cref="Notify"/> after the commit to start delivery at once.
    /// </summary>
    public async Task<int> PublishAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, string eventType, object data,
        DateTimeOffset now, CancellationToken ct)
    {
        if (!(await SubscribedTypesAsync(tenantId, ct)).Contains(eventType))
        {
            return 0;
        }
        var json = data as string ?? JsonSerializer.Serialize(data, WebhookJson.Options);
        await using var cmd = Sql.Command(conn, InsertSql, tenantId, eventType, json, now);
        cmd.Parameters[2].NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Jsonb;
        cmd.Transaction = tx;
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Wakes this process's dispatcher (after the publishing transaction committed).</summary>
    public void Notify() => signal.Notify();

    private static string CacheKey(Guid tenantId) => "webhook-types:" + tenantId.ToString("N");
}

/// <summary>The JSON of webhook bodies: snake_case like the APIs.</summary>
public static class WebhookJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Newsletter.ServiceDefaults.ServiceDefaultsExtensions.ConfigureJson(o);
        return o;
    }
}
