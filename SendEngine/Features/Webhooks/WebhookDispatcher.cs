using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;
using StandardWebhooks;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// Delivers the webhook outbox. A batch of due messages of enabled endpoints is claimed with a lease (next_attempt_at
/// moved ahead and committed, SKIP LOCKED), so several processes share the queue and none holds locks across HTTP
/// calls; a process that dies mid-batch leaves its messages to be claimed again when the lease ends (at least once:
/// the receiver de-duplicates on <c>webhook-id</c>, which never changes). Each POST is signed per Standard Webhooks with
/// the endpoint's secret (and, during a rotation's overlap, the previous one too). A 2xx delivers the message; anything
/// else (status, timeout, refused target) is retried after the next wait of <see cref="EventWebhookOptions.Schedule"/>,
/// then failed. Every attempt is recorded. After <see cref="EventWebhookOptions.PauseAfterFailures"/> failed attempts in a
/// row an endpoint is paused as a whole (as Svix and Postal do): its messages are no longer attempted (the rest of a batch
/// in flight is put back unattempted), and when the pause ends one message is claimed alone as a probe; a failed probe
/// pauses it again for as long as it has been failing (between MinPause and MaxPause, so probes back off by doubling), a
/// successful one makes every waiting message due at once. A receiver that is down thus costs one attempt per pause, not
/// one per message per retry, and loses nothing: paused messages spend none of their retry schedule. An endpoint with no
/// success for <see cref="EventWebhookOptions.DisableAfter"/> is disabled, logged and counted
/// (sendengine_webhook_endpoints_disabled_total).
/// </summary>
public sealed partial class WebhookDispatcher(
    NpgsqlDataSource db,
    IHttpClientFactory httpFactory,
    WebhookSecretProtector secrets,
    WebhookPublisher publisher,
    WakeSignal<WebhookDispatcher> signal,
    IMeterFactory meters,
    IOptions<EventWebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookDispatcher> logger) : BatchLoop(signal, clock)
{
    public const string HttpClientName = "tenant-webhooks";
    private const int ResponseBodyLimit = 1024;

    private readonly Counter<long> _attempts = meters.Create("SendEngine").CreateCounter<long>("sendengine.webhooks.attempts",
        description: "Tenant webhook POSTs, by outcome (delivered, retried, failed).");
    private readonly Counter<long> _disabled = meters.Create("SendEngine").CreateCounter<long>("sendengine.webhooks.endpoints_disabled",
        description: "Tenant webhook endpoints disabled after failing for the configured window.");

    private sealed record Claimed(long Id, string WebhookId, Guid EndpointId, Guid TenantId, string EventType, string Payload, int Attempts, bool Replay);

    /// <param name="Secret">Null when it cannot be decrypted (the password or key ring changed): every attempt fails, visibly.</param>
    /// <param name="Failures">Failed attempts in a row when the batch was claimed.</param>
    /// <param name="Probing">Paused: the batch holds its one probe message.</param>
    private sealed record Endpoint(Guid Id, string Url, byte[]? Secret, byte[]? PreviousSecret, DateTimeOffset? PreviousExpiresAt,
        int Failures = 0, bool Probing = false)
    {
        /// <summary>Failed attempts of this batch so far (POSTs run in parallel).</summary>
        public int BatchFailures;
    }

    /// <param name="Skipped">Not attempted: the endpoint reached the pause threshold during this batch.</param>
    private sealed record Outcome(Claimed Message, Endpoint Endpoint, DateTimeOffset At, int? Status, string? Body, string? Error, int LatencyMs,
        bool Skipped = false)
    {
        public bool Success => Status is >= 200 and < 300;
    }

    protected override bool Enabled => options.Value.DispatcherEnabled;
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => options.Value.BatchSize;
    protected override int Workers => 2;

    protected override Task<int> RunBatchAsync(CancellationToken ct) => DispatchBatchAsync(ct);

    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex.Message);

    /// <summary>Claims and delivers one batch; returns how many messages it claimed.</summary>
    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        // Long enough for every POST of the batch to finish or time out.
        var lease = o.Timeout * (1 + o.BatchSize / o.Concurrency) + TimeSpan.FromSeconds(30);
        var batch = new List<Claimed>();
        // Due messages of unpaused endpoints, plus one probe per paused endpoint whose pause is over: the endpoint's
        // paused_until moves to the lease's end in the same statement, so no other dispatcher probes it meanwhile
        // (a concurrent claim waits on the endpoint's row, then sees the new paused_until and skips it).
        await using (var cmd = db.CreateCommand("""
            WITH probes AS (
                UPDATE webhook_endpoints e SET paused_until = $1
                WHERE e.state = 'enabled' AND e.paused_until <= $2
                  AND EXISTS (SELECT 1 FROM webhook_messages p WHERE p.endpoint_id = e.id AND p.status = 'pending')
                RETURNING e.id),
            due AS (
                SELECT m2.id FROM webhook_messages m2
                JOIN webhook_endpoints e ON e.id = m2.endpoint_id AND e.state = 'enabled' AND e.paused_until IS NULL
                WHERE m2.status = 'pending' AND m2.next_attempt_at <= $2
                ORDER BY m2.next_attempt_at, m2.id LIMIT $3 FOR UPDATE OF m2 SKIP LOCKED),
            probe AS (
                SELECT (SELECT p.id FROM webhook_messages p WHERE p.endpoint_id = probes.id AND p.status = 'pending'
                        ORDER BY p.next_attempt_at, p.id LIMIT 1 FOR UPDATE SKIP LOCKED) AS id
                FROM probes)
            UPDATE webhook_messages m SET next_attempt_at = $1
            WHERE m.id IN (SELECT id FROM due UNION ALL SELECT id FROM probe WHERE id IS NOT NULL)
            RETURNING m.id, m.webhook_id, m.endpoint_id, m.tenant_id, m.event_type, m.payload, m.attempts, m.replay
            """))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = now + lease });
            cmd.Parameters.Add(new NpgsqlParameter { Value = now });
            cmd.Parameters.Add(new NpgsqlParameter { Value = o.BatchSize });
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                batch.Add(new Claimed(reader.GetInt64(0), reader.GetString(1), reader.GetGuid(2), reader.GetGuid(3), reader.GetString(4),
                    reader.GetString(5), reader.GetInt32(6), reader.GetBoolean(7)));
            }
        }
        if (batch.Count == 0)
        {
            return 0;
        }
        var endpoints = await LoadEndpointsAsync(batch.Select(m => m.EndpointId).Distinct().ToArray(), ct);
        var outcomes = new Outcome[batch.Count];
        using var http = httpFactory.CreateClient(HttpClientName);
        await Parallel.ForEachAsync(Enumerable.Range(0, batch.Count), new ParallelOptions { MaxDegreeOfParallelism = o.Concurrency, CancellationToken = ct },
            async (i, token) =>
            {
                var m = batch[i];
                if (!endpoints.TryGetValue(m.EndpointId, out var e))
                {
                    outcomes[i] = new Outcome(m, new Endpoint(m.EndpointId, "", [], null, null), Clock.GetUtcNow(), null, null, "the endpoint was deleted", 0);
                }
                else if (!e.Probing && e.Failures + Volatile.Read(ref e.BatchFailures) >= o.PauseAfterFailures)
                {
                    // The endpoint is being paused: the rest of its messages wait for the probe, unattempted.
                    outcomes[i] = new Outcome(m, e, Clock.GetUtcNow(), null, null, null, 0, Skipped: true);
                }
                else
                {
                    outcomes[i] = await PostAsync(http, m, e, token);
                    if (!outcomes[i].Success)
                    {
                        Interlocked.Increment(ref e.BatchFailures);
                    }
                }
            });
        await RecordAsync(outcomes.Where(x => x.Endpoint.Url.Length > 0).ToList(), ct);
        return batch.Count;
    }

    private async Task<Dictionary<Guid, Endpoint>> LoadEndpointsAsync(Guid[] ids, CancellationToken ct)
    {
        var found = new Dictionary<Guid, Endpoint>();
        await using var cmd = db.CreateCommand("""
            SELECT id, url, secret, previous_secret, previous_secret_expires_at, consecutive_failures, paused_until IS NOT NULL
            FROM webhook_endpoints WHERE id = ANY($1)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = ids });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var id = reader.GetGuid(0);
            found[id] = new Endpoint(id, reader.GetString(1), TryUnprotect(id, reader.GetFieldValue<byte[]>(2)),
                reader.IsDBNull(3) ? null : TryUnprotect(id, reader.GetFieldValue<byte[]>(3)),
                reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4), reader.GetInt32(5), reader.GetBoolean(6));
        }
        return found;
    }

    private byte[]? TryUnprotect(Guid endpointId, byte[] stored)
    {
        try
        {
            return secrets.Unprotect(endpointId, stored);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            LogSecretUnreadable(logger, endpointId, ex.Message);
            return null;
        }
    }

    private async Task<Outcome> PostAsync(HttpClient http, Claimed m, Endpoint e, CancellationToken ct)
    {
        var at = Clock.GetUtcNow();
        if (e.Secret is null)
        {
            return new Outcome(m, e, at, null, null, "not sent: the endpoint's secret cannot be decrypted (Webhooks:SecretPassword or the Data Protection key ring changed); rotate the secret", 0);
        }
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, e.Url)
        {
            Content = new StringContent(m.Payload, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        // One v1 signature per valid secret, space-separated: receivers on either secret verify during the overlap.
        var signature = new StandardWebhook(e.Secret).Sign(m.WebhookId, at, m.Payload);
        if (e.PreviousSecret is not null && e.PreviousExpiresAt > at)
        {
            signature += " " + new StandardWebhook(e.PreviousSecret).Sign(m.WebhookId, at, m.Payload);
        }
        request.Headers.TryAddWithoutValidation("webhook-id", m.WebhookId);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", at.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", signature);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Value.Timeout);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var body = await ReadPrefixAsync(response, timeout.Token);
            return new Outcome(m, e, at, (int)response.StatusCode, body, null, Elapsed(started));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new Outcome(m, e, at, null, null, $"timed out after {options.Value.Timeout.TotalSeconds:0.###} s", Elapsed(started));
        }
        catch (HttpRequestException ex)
        {
            var refused = ex as WebhookTargetRefusedException ?? ex.InnerException as WebhookTargetRefusedException;
            return new Outcome(m, e, at, null, null, refused?.Message ?? ex.Message, Elapsed(started));
        }
    }

    /// <summary>The first 1 KB of the answer (as UTF-8 text); the rest is not read.</summary>
    private static async Task<string?> ReadPrefixAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[ResponseBodyLimit];
        var read = 0;
        int n;
        while (read < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(read), ct)) > 0)
        {
            read += n;
        }
        if (read == 0)
        {
            return null;
        }
        // Cut at a character boundary and drop NULs, which PostgreSQL text refuses.
        return new UTF8Encoding(false, false).GetString(buffer, 0, read).Replace("\0", "", StringComparison.Ordinal).TrimEnd('\uFFFD');
    }

    private static int Elapsed(long started) => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(started).TotalMilliseconds);

    /// <summary>Attempts, message states and endpoint health of one batch, in one transaction.</summary>
    private async Task RecordAsync(List<Outcome> all, CancellationToken ct)
    {
        if (all.Count == 0)
        {
            return;
        }
        var o = options.Value;
        var schedule = o.Schedule;
        var now = Clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(CancellationToken.None);
        await using var tx = await conn.BeginTransactionAsync(CancellationToken.None);
        var skipped = all.Where(x => x.Skipped).Select(x => x.Message.Id).ToArray();
        if (skipped.Length > 0)
        {
            // Back to the queue as they were (no attempt spent): due again, they wait for the endpoint's pause to end.
            await Sql.ExecuteAsync(conn, tx, "UPDATE webhook_messages SET next_attempt_at = $2 WHERE id = ANY($1)", CancellationToken.None, skipped, now);
        }
        var outcomes = all.Where(x => !x.Skipped).ToList();
        if (outcomes.Count == 0)
        {
            await tx.CommitAsync(CancellationToken.None);
            return;
        }
        var ids = new List<long>();
        var statuses = new List<string>();
        var next = new List<DateTime?>();
        var errors = new List<string?>();
        foreach (var x in outcomes)
        {
            var attempts = x.Message.Attempts + 1;
            var giveUp = !x.Success && attempts > schedule.Length;
            ids.Add(x.Message.Id);
            statuses.Add(x.Success ? WebhookMessageStatuses.Delivered : giveUp ? WebhookMessageStatuses.Failed : WebhookMessageStatuses.Pending);
            next.Add(x.Success || giveUp ? null : (now + schedule[attempts - 1]).UtcDateTime);
            errors.Add(x.Success ? null : Truncate(x.Error ?? $"answered {x.Status}", 1000));
            _attempts.Add(1, new KeyValuePair<string, object?>("outcome", x.Success ? "delivered" : giveUp ? "failed" : "retried"));
            if (!x.Success)
            {
                LogAttemptFailed(logger, x.Message.WebhookId, x.Endpoint.Id, attempts, giveUp, errors[^1]!);
            }
        }
        await using (var cmd = Sql.Command(conn, """
            UPDATE webhook_messages m SET status = d.status, attempts = m.attempts + 1, next_attempt_at = d.next, last_error = d.error,
                completed_at = CASE WHEN d.status = 'pending' THEN NULL ELSE $5 END, replay = false
            FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) AS d(id, status, next, error)
            WHERE m.id = d.id
            """, ids.ToArray(), statuses.ToArray(), next.ToArray(), errors.ToArray(), now))
        {
            cmd.Transaction = tx;
            await cmd.ExecuteNonQueryAsync(CancellationToken.None);
        }
        await using (var cmd = Sql.Command(conn, """
            INSERT INTO webhook_attempts (message_id, webhook_id, endpoint_id, tenant_id, event_type, attempted_at, url, request_body,
                response_status, response_body, error, latency_ms, replay)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
                $9::int[], $10::text[], $11::text[], $12::int[], $13::boolean[])
            """,
            outcomes.Select(x => x.Message.Id).ToArray(), outcomes.Select(x => x.Message.WebhookId).ToArray(),
            outcomes.Select(x => x.Endpoint.Id).ToArray(), outcomes.Select(x => x.Message.TenantId).ToArray(),
            outcomes.Select(x => x.Message.EventType).ToArray(), outcomes.Select(x => x.At.UtcDateTime).ToArray(),
            outcomes.Select(x => x.Endpoint.Url).ToArray(), outcomes.Select(x => x.Message.Payload).ToArray(),
            outcomes.Select(x => x.Status).ToArray(), outcomes.Select(x => x.Body).ToArray(),
            outcomes.Select(x => x.Error is null ? null : Truncate(x.Error, 1000)).ToArray(), outcomes.Select(x => x.LatencyMs).ToArray(),
            outcomes.Select(x => x.Message.Replay).ToArray()))
        {
            cmd.Transaction = tx;
            await cmd.ExecuteNonQueryAsync(CancellationToken.None);
        }
        // Endpoint health: any success in the batch clears the failure window, the count of failures in a row and a
        // pause; otherwise the window starts (or goes on), the count grows, and at the threshold the endpoint is paused
        // for as long as it has been failing (MinPause..MaxPause). The self-join reads the row as it was (was_paused).
        var health = outcomes.GroupBy(x => x.Endpoint.Id)
            .Select(g => (Id: g.Key, Ok: g.Any(x => x.Success), Failed: g.Count(x => !x.Success))).ToList();
        var disabled = new List<(Guid Id, Guid TenantId, DateTimeOffset Since)>();
        var paused = new List<(Guid Id, Guid TenantId, int Failures, DateTimeOffset Until)>();
        var resumed = new List<Guid>();
        await using (var cmd = Sql.Command(conn, """
            WITH h AS (SELECT * FROM unnest($1::uuid[], $2::boolean[], $5::int[]) AS h(id, ok, failed)),
            upd AS (
                UPDATE webhook_endpoints e SET failing_since = CASE WHEN h.ok THEN NULL ELSE COALESCE(e.failing_since, $3) END,
                    state = CASE WHEN NOT h.ok AND e.state = 'enabled' AND COALESCE(e.failing_since, $3) <= $3 - $4::interval THEN 'failing_disabled' ELSE e.state END,
                    consecutive_failures = CASE WHEN h.ok THEN 0 ELSE e.consecutive_failures + h.failed END,
                    paused_until = CASE WHEN h.ok THEN NULL
                        WHEN e.consecutive_failures + h.failed >= $6
                            THEN $3 + LEAST($8::interval, GREATEST($7::interval, $3 - COALESCE(e.failing_since, $3)))
                        ELSE e.paused_until END
                FROM h, webhook_endpoints prev WHERE e.id = h.id AND prev.id = e.id
                RETURNING e.id, e.tenant_id, e.state, e.failing_since, e.disabled_at, e.consecutive_failures, e.paused_until,
                    prev.paused_until IS NOT NULL AS was_paused)
            SELECT id, tenant_id, failing_since, state = 'failing_disabled' AND disabled_at IS NULL, consecutive_failures, paused_until, was_paused
            FROM upd
            """, health.Select(h => h.Id).ToArray(), health.Select(h => h.Ok).ToArray(), now, o.DisableAfter,
            health.Select(h => h.Failed).ToArray(), o.PauseAfterFailures, o.MinPause, o.MaxPause))
        {
            cmd.Transaction = tx;
            await using var reader = await cmd.ExecuteReaderAsync(CancellationToken.None);
            while (await reader.ReadAsync(CancellationToken.None))
            {
                var (id, tenantId) = (reader.GetGuid(0), reader.GetGuid(1));
                var pausedUntil = reader.IsDBNull(5) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(5);
                var wasPaused = reader.GetBoolean(6);
                if (reader.GetBoolean(3))
                {
                    disabled.Add((id, tenantId, reader.GetFieldValue<DateTimeOffset>(2)));
                }
                if (pausedUntil is { } until && !wasPaused)
                {
                    paused.Add((id, tenantId, reader.GetInt32(4), until));
                }
                else if (pausedUntil is null && wasPaused)
                {
                    resumed.Add(id);
                }
            }
        }
        if (resumed.Count > 0)
        {
            // The probe succeeded: what waited during the pause is due now, not at its next scheduled retry.
            await Sql.ExecuteAsync(conn, tx, """
                UPDATE webhook_messages SET next_attempt_at = $2 WHERE endpoint_id = ANY($1) AND status = 'pending' AND next_attempt_at > $2
                """, CancellationToken.None, resumed.ToArray(), now);
        }
        foreach (var (id, _, since) in disabled)
        {
            await Sql.ExecuteAsync(conn, tx, """
                UPDATE webhook_endpoints SET disabled_at = $2, updated_at = $2, disabled_reason = $3 WHERE id = $1
                """, CancellationToken.None, id, now,
                $"Disabled automatically: every attempt failed since {since:u} (more than {o.DisableAfter.TotalHours:0.##} h). Fix the receiver and set enabled to true.");
        }
        await tx.CommitAsync(CancellationToken.None);
        foreach (var (id, tenantId, failures, until) in paused)
        {
            LogEndpointPaused(logger, id, tenantId, failures, until);
        }
        if (resumed.Count > 0)
        {
            LogEndpointsResumed(logger, resumed.Count);
            publisher.Notify();
        }
        foreach (var (id, tenantId, since) in disabled)
        {
            publisher.Invalidate(tenantId);
            _disabled.Add(1);
            LogEndpointDisabled(logger, id, tenantId, since);
        }
    }

    private static string Truncate(string s, int max) => s.Length > max ? s[..max] : s;

    [LoggerMessage(LogLevel.Error, "Webhook endpoint {EndpointId}: its secret cannot be decrypted: {Error}")]
    private static partial void LogSecretUnreadable(ILogger logger, Guid endpointId, string error);

    [LoggerMessage(LogLevel.Warning, "Webhook dispatch batch failed: {Error}")]
    private static partial void LogBatchFailed(ILogger logger, string error);

    [LoggerMessage(LogLevel.Information, "Webhook {WebhookId} to endpoint {EndpointId} failed, attempt {Attempts}, given up: {GivenUp}: {Error}")]
    private static partial void LogAttemptFailed(ILogger logger, string webhookId, Guid endpointId, int attempts, bool givenUp, string error);

    [LoggerMessage(LogLevel.Warning, "Webhook endpoint {EndpointId} of tenant {TenantId} paused after {Failures} failed attempts in a row; its events wait, next probe at {Until}")]
    private static partial void LogEndpointPaused(ILogger logger, Guid endpointId, Guid tenantId, int failures, DateTimeOffset until);

    [LoggerMessage(LogLevel.Information, "{Count} paused webhook endpoint(s) answered a probe: their waiting events are due now")]
    private static partial void LogEndpointsResumed(ILogger logger, int count);

    [LoggerMessage(LogLevel.Warning, "Webhook endpoint {EndpointId} of tenant {TenantId} disabled: no successful delivery since {FailingSince}")]
    private static partial void LogEndpointDisabled(ILogger logger, Guid endpointId, Guid tenantId, DateTimeOffset failingSince);
}
