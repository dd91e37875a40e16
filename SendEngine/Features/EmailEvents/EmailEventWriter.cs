using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// Group commit for the webhook: concurrent requests queue their events here and a few writer loops insert whatever is
/// waiting as one multi-row INSERT … ON CONFLICT (idempotency_key) DO NOTHING (synchronous commit), then complete
/// each request with the keys that were new. A request is answered 200 only after its rows are committed. Each request's
/// webhook gateway log entry is inserted by the same statement batch (one implicit transaction, no extra round trip).
/// While somebody watches the live view, the committed entries (with the seq the insert gave them) are handed to
/// <see cref="WebhookGateway.GatewayFeed"/>, which then need not read them back.
/// </summary>
public sealed partial class EmailEventWriter(NpgsqlDataSource db, IOptions<EmailEventOptions> options,
    WakeSignal<EmailEventProcessor> signal, WakeSignal<WebhookGateway.GatewayFeed> feedSignal, WebhookGateway.GatewayFeed feed,
    TimeProvider clock, ILogger<EmailEventWriter> logger) : BackgroundService
{
    private const int MaxRowsPerInsert = 1000;

    private sealed record Pending(IReadOnlyList<ParsedEmailEvent> Events, WebhookGateway.GatewayEntry? Entry, TaskCompletionSource<HashSet<string>> Done);

    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(20_000)
    {
        FullMode = BoundedChannelFullMode.Wait,
    });

    /// <summary>Stores the events; returns the idempotency keys that were inserted (the others were duplicates).
    /// Throws <see cref="EmailEventWriterStoppedException"/> when the writer stops (shutdown) before they were stored.
    /// When <paramref name="ct"/> fires first, the events stay queued and may still be stored: a caller that then
    /// answers non-200 gets Tencent's retry, which is found a duplicate, so nothing is lost either way.</summary>
    public async Task<HashSet<string>> WriteAsync(IReadOnlyList<ParsedEmailEvent> events, CancellationToken ct) =>
        await WriteAsync(events, null, ct);

    /// <summary>As <see cref="WriteAsync(IReadOnlyList{ParsedEmailEvent}, CancellationToken)"/>, with the request's gateway
    /// log entry, which the events then name.</summary>
    public async Task<HashSet<string>> WriteAsync(IReadOnlyList<ParsedEmailEvent> events, WebhookGateway.GatewayEntry? entry, CancellationToken ct)
    {
        var pending = new Pending(events, entry, new TaskCompletionSource<HashSet<string>>(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await _queue.Writer.WriteAsync(pending, ct);
        }
        catch (ChannelClosedException)
        {
            throw new EmailEventWriterStoppedException();
        }
        try
        {
            return await pending.Done.Task.WaitAsync(ct);
        }
        catch (OperationCanceledException) when (pending.Done.Task.IsCompletedSuccessfully)
        {
            // Committed just as the caller gave up: the events are stored, so report that rather than a failure.
            return await pending.Done.Task;
        }
    }

    /// <summary>Queues the log entry of a refused request, without waiting: the refusal is answered at once, and when the
    /// queue is full (a flood of forged callbacks) the entry is dropped rather than slowing anything down.</summary>
    public void Record(WebhookGateway.GatewayEntry entry) =>
        _queue.Writer.TryWrite(new Pending([], entry, new TaskCompletionSource<HashSet<string>>(TaskCreationOptions.RunContinuationsAsynchronously)));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.WhenAll(Enumerable.Range(0, options.Value.Writers).Select(_ => Task.Run(() => LoopAsync(stoppingToken), CancellationToken.None)));
        }
        finally
        {
            // No loop reads any more: refuse new requests, and fail the queued ones rather than leave them waiting.
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var p))
            {
                p.Done.TrySetException(new EmailEventWriterStoppedException());
            }
        }
    }

    private async Task LoopAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Pending>();
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                batch.Clear();
                var rows = 0;
                while (rows < MaxRowsPerInsert && _queue.Reader.TryRead(out var p))
                {
                    batch.Add(p);
                    rows += Math.Max(1, p.Events.Count);
                }
                if (batch.Count == 0)
                {
                    continue;
                }
                try
                {
                    var inserted = await InsertAsync(batch, stoppingToken);
                    foreach (var p in batch)
                    {
                        p.Done.TrySetResult(inserted);
                    }
                    if (inserted.Count > 0)
                    {
                        signal.Notify();
                    }
                    feedSignal.Notify();
                }
                catch (Exception ex)
                {
                    // Cancelled by shutdown: the rows may or may not have committed; either way the caller answers 503
                    // and Tencent's retry is stored, or found a duplicate.
                    var stopping = stoppingToken.IsCancellationRequested;
                    if (!stopping)
                    {
                        LogInsertFailed(logger, batch.Count, ex.Message);
                    }
                    foreach (var p in batch)
                    {
                        p.Done.TrySetException(stopping ? new EmailEventWriterStoppedException() : ex);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var p in batch)
            {
                p.Done.TrySetException(new EmailEventWriterStoppedException());
            }
        }
    }

    private async Task<HashSet<string>> InsertAsync(List<Pending> batch, CancellationToken ct)
    {
        var events = new List<ParsedEmailEvent>();
        var eventEntries = new List<Guid?>();
        var entries = new List<WebhookGateway.GatewayEntry>();
        foreach (var p in batch)
        {
            if (p.Entry is { } entry)
            {
                entries.Add(entry);
            }
            foreach (var e in p.Events)
            {
                events.Add(e);
                eventEntries.Add(p.Entry?.Id);
            }
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        var inserted = new HashSet<string>(StringComparer.Ordinal);
        static NpgsqlParameter P<T>(T[] values, NpgsqlDbType type) => new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type };
        // The entries' columns, $1…$13 after the events' parameters (offset): one row per request.
        const string EntryColumns = "id, received_at, source, method, path, headers, body, body_truncated, verification, status_code, events, event_types, error";
        string EntryArrays(int o) => $"""
            unnest(${o + 1}::uuid[], ${o + 2}::timestamptz[], ${o + 3}::text[], ${o + 4}::text[], ${o + 5}::text[], ${o + 6}::text[],
                   ${o + 7}::text[], ${o + 8}::boolean[], ${o + 9}::text[], ${o + 10}::integer[], ${o + 11}::integer[], ${o + 12}::text[],
                   ${o + 13}::text[]) AS u(i, ra, so, m, pa, h, b, bt, v, sc, n, et, er)
            """;
        void AddEntries(NpgsqlCommand c)
        {
            c.Parameters.Add(P(entries.Select(e => e.Id).ToArray(), NpgsqlDbType.Uuid));
            c.Parameters.Add(P(entries.Select(e => e.ReceivedAt).ToArray(), NpgsqlDbType.TimestampTz));
            c.Parameters.Add(P(entries.Select(e => e.Source).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.Method).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.Path).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.Headers).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.Body).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.BodyTruncated).ToArray(), NpgsqlDbType.Boolean));
            c.Parameters.Add(P(entries.Select(e => e.Verification).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.StatusCode).ToArray(), NpgsqlDbType.Integer));
            c.Parameters.Add(P(entries.Select(e => e.Events).ToArray(), NpgsqlDbType.Integer));
            c.Parameters.Add(P(entries.Select(e => string.Join(',', e.EventTypes)).ToArray(), NpgsqlDbType.Text));
            c.Parameters.Add(P(entries.Select(e => e.Error).ToArray(), NpgsqlDbType.Text));
        }
        if (events.Count == 0)
        {
            // Only refused requests: their entries keep what they were sent.
            await using var only = new NpgsqlCommand($"""
                INSERT INTO webhook_gateway_entries ({EntryColumns})
                SELECT i, ra, so, m, pa, h, b, bt, v, sc, n, string_to_array(et, ','), er FROM {EntryArrays(0)}
                RETURNING id, seq
                """, conn);
            AddEntries(only);
            var refused = new Dictionary<Guid, long>();
            await using (var reader = await only.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    refused[reader.GetGuid(0)] = reader.GetInt64(1);
                }
            }
            HandOver(entries, refused, []);
            return inserted;
        }
        // One statement, so one implicit transaction: an entry is stored exactly when its events are. The entry learns the
        // id range of the events stored with it and keeps no body when all of them were (their payloads are the body);
        // a request whose events were (partly) duplicates keeps its body, as there is nothing else to show.
        var entrySql = entries.Count == 0 ? "" : $"""
            , s AS (SELECT gateway_entry_id AS g, min(id) AS lo, max(id) AS hi, count(*) AS c FROM ev WHERE gateway_entry_id IS NOT NULL GROUP BY 1),
            en AS (
                INSERT INTO webhook_gateway_entries ({EntryColumns}, first_event_id, last_event_id)
                SELECT i, ra, so, m, pa, h, CASE WHEN s.c = n THEN NULL ELSE b END, bt, v, sc, n, string_to_array(et, ','), er, s.lo, s.hi
                FROM {EntryArrays(16)} LEFT JOIN s ON s.g = u.i
                RETURNING id, seq)
            """;
        await using var cmd = new NpgsqlCommand($"""
            WITH ev AS (
                INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, smtp_message_id, email,
                    occurred_at, link, reason, bounce_type, user_agent, ip_address, payload, received_at, attempts, gateway_entry_id)
                SELECT k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p::jsonb, $15, 0, g
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                            $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $16::uuid[])
                     AS u(k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p, g)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id, idempotency_key, gateway_entry_id)
            {entrySql}
            SELECT idempotency_key, gateway_entry_id, NULL::bigint FROM ev
            {(entries.Count == 0 ? "" : "UNION ALL SELECT NULL, id, seq FROM en")}
            """, conn);
        cmd.Parameters.Add(P(events.Select(e => e.IdempotencyKey).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.Format).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.EventType).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.RawEventType).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.MessageId).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.SmtpMessageId).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.Email).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.OccurredAt).ToArray(), NpgsqlDbType.TimestampTz));
        cmd.Parameters.Add(P(events.Select(e => e.Link).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.Reason).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.BounceType).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.UserAgent).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.IpAddress).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(P(events.Select(e => e.Payload).ToArray(), NpgsqlDbType.Text));
        cmd.Parameters.Add(new NpgsqlParameter { Value = clock.GetUtcNow(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(P(eventEntries.ToArray(), NpgsqlDbType.Uuid));
        if (entries.Count > 0)
        {
            AddEntries(cmd);
        }
        // The stored events' keys (and entries), then the entries' seqs.
        var stored = new Dictionary<Guid, int>();
        var seqs = new Dictionary<Guid, long>();
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                if (reader.IsDBNull(2))
                {
                    inserted.Add(reader.GetString(0));
                    if (!reader.IsDBNull(1))
                    {
                        var g = reader.GetGuid(1);
                        stored[g] = stored.GetValueOrDefault(g) + 1;
                    }
                }
                else
                {
                    seqs[reader.GetGuid(1)] = reader.GetInt64(2);
                }
            }
        }
        if (inserted.Count < events.Count)
        {
            // Repeated callbacks (an ESP retry): their entries take the tenant of the event stored first, when it is
            // known, so that the tenant sees the duplicate (and its live view hears of it). Only batches with duplicates
            // pay this round trip.
            var repeated = Enumerable.Range(0, events.Count).Where(i => eventEntries[i] is not null && !inserted.Contains(events[i].IdempotencyKey)).ToList();
            await using var attribute = new NpgsqlCommand($"""
                WITH a AS (
                    UPDATE webhook_gateway_entries g SET tenant_id = v.tenant_id
                    FROM unnest($1::uuid[], $2::text[]) AS u(i, k) JOIN email_events v ON v.idempotency_key = u.k
                    WHERE g.id = u.i AND g.tenant_id IS NULL AND v.tenant_id IS NOT NULL
                    RETURNING g.id)
                {WebhookGateway.GatewayFeed.NotifySql("a", "id")}
                """, conn);
            attribute.Parameters.Add(P(repeated.Select(i => eventEntries[i]!.Value).ToArray(), NpgsqlDbType.Uuid));
            attribute.Parameters.Add(P(repeated.Select(i => events[i].IdempotencyKey).ToArray(), NpgsqlDbType.Text));
            await attribute.ExecuteNonQueryAsync(ct);
        }
        HandOver(entries, seqs, stored);
        return inserted;
    }

    /// <summary>Gives the live view the committed entries as they are now (what its read would find): no tenant yet,
    /// and the result of a request that nothing processed yet. Only while somebody watches.</summary>
    private void HandOver(List<WebhookGateway.GatewayEntry> entries, Dictionary<Guid, long> seqs, Dictionary<Guid, int> stored)
    {
        if (!feed.Watched || entries.Count == 0)
        {
            return;
        }
        var committed = new List<(long, Newsletter.Contracts.Webhooks.GatewayEntrySummary)>(entries.Count);
        foreach (var e in entries)
        {
            if (seqs.TryGetValue(e.Id, out var seq))
            {
                committed.Add((seq, WebhookGateway.GatewayStore.Committed(e, stored.GetValueOrDefault(e.Id))));
            }
        }
        feed.Committed(committed);
    }

    [LoggerMessage(LogLevel.Error, "Storing {Requests} webhook requests failed: {Error}")]
    private static partial void LogInsertFailed(ILogger logger, int requests, string error);
}

/// <summary>The writer stopped (shutdown) before the events were stored: the caller answers 503, Tencent retries.</summary>
public sealed class EmailEventWriterStoppedException() : Exception("The event writer is stopping; the events were not stored.");
