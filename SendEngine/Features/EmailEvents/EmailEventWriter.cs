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
/// </summary>
public sealed partial class EmailEventWriter(NpgsqlDataSource db, IOptions<EmailEventOptions> options,
    WakeSignal<EmailEventProcessor> signal, WakeSignal<WebhookGateway.GatewayFeed> feedSignal,
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
        // No explicit transaction: the statements of one batch run in one implicit transaction, so an entry is stored
        // exactly when its events are.
        await using var sql = new NpgsqlBatch(conn);
        void Add<T>(NpgsqlBatchCommand cmd, T[] values, NpgsqlDbType type) =>
            cmd.Parameters.Add(new NpgsqlParameter { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type });
        if (entries.Count > 0)
        {
            var cmd = new NpgsqlBatchCommand("""
                INSERT INTO webhook_gateway_entries (id, received_at, source, method, path, headers, body, body_truncated, verification,
                    status_code, events, event_types, error)
                SELECT i, ra, s, m, pa, h::jsonb, b, bt, v, sc, n, string_to_array(et, ','), er
                FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[],
                            $9::text[], $10::integer[], $11::integer[], $12::text[], $13::text[])
                     AS u(i, ra, s, m, pa, h, b, bt, v, sc, n, et, er)
                """);
            Add(cmd, entries.Select(e => e.Id).ToArray(), NpgsqlDbType.Uuid);
            Add(cmd, entries.Select(e => e.ReceivedAt).ToArray(), NpgsqlDbType.TimestampTz);
            Add(cmd, entries.Select(e => e.Source).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.Method).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.Path).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.Headers).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.Body).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.BodyTruncated).ToArray(), NpgsqlDbType.Boolean);
            Add(cmd, entries.Select(e => e.Verification).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.StatusCode).ToArray(), NpgsqlDbType.Integer);
            Add(cmd, entries.Select(e => e.Events).ToArray(), NpgsqlDbType.Integer);
            Add(cmd, entries.Select(e => string.Join(',', e.EventTypes)).ToArray(), NpgsqlDbType.Text);
            Add(cmd, entries.Select(e => e.Error).ToArray(), NpgsqlDbType.Text);
            sql.BatchCommands.Add(cmd);
        }
        var inserted = new HashSet<string>(StringComparer.Ordinal);
        if (events.Count == 0)
        {
            await sql.ExecuteNonQueryAsync(ct);
            return inserted;
        }
        var ev = new NpgsqlBatchCommand("""
            INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, smtp_message_id, email,
                occurred_at, link, reason, bounce_type, user_agent, ip_address, payload, received_at, attempts, gateway_entry_id)
            SELECT k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p::jsonb, $15, 0, g
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                        $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $16::uuid[])
                 AS u(k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p, g)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key
            """);
        Add(ev, events.Select(e => e.IdempotencyKey).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.Format).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.EventType).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.RawEventType).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.MessageId).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.SmtpMessageId).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.Email).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.OccurredAt).ToArray(), NpgsqlDbType.TimestampTz);
        Add(ev, events.Select(e => e.Link).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.Reason).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.BounceType).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.UserAgent).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.IpAddress).ToArray(), NpgsqlDbType.Text);
        Add(ev, events.Select(e => e.Payload).ToArray(), NpgsqlDbType.Text);
        ev.Parameters.Add(new NpgsqlParameter { Value = clock.GetUtcNow(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        Add(ev, eventEntries.ToArray(), NpgsqlDbType.Uuid);
        sql.BatchCommands.Add(ev);
        await using var reader = await sql.ExecuteReaderAsync(ct);
        // The entries' statement returns no rows; the events' RETURNING is the result set.
        do
        {
            while (await reader.ReadAsync(ct))
            {
                inserted.Add(reader.GetString(0));
            }
        }
        while (await reader.NextResultAsync(ct));
        await reader.DisposeAsync();
        if (inserted.Count < events.Count)
        {
            // Repeated callbacks (an ESP retry): their entries take the tenant of the event stored first, when it is
            // known, so that the tenant sees the duplicate. Only batches with duplicates pay this round trip.
            var repeated = Enumerable.Range(0, events.Count).Where(i => eventEntries[i] is not null && !inserted.Contains(events[i].IdempotencyKey)).ToList();
            await using var attribute = new NpgsqlCommand("""
                UPDATE webhook_gateway_entries g SET tenant_id = v.tenant_id, seq = DEFAULT
                FROM unnest($1::uuid[], $2::text[]) AS u(i, k) JOIN email_events v ON v.idempotency_key = u.k
                WHERE g.id = u.i AND g.tenant_id IS NULL AND v.tenant_id IS NOT NULL
                """, conn);
            attribute.Parameters.Add(new NpgsqlParameter { Value = repeated.Select(i => eventEntries[i]!.Value).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
            attribute.Parameters.Add(new NpgsqlParameter { Value = repeated.Select(i => events[i].IdempotencyKey).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            await attribute.ExecuteNonQueryAsync(ct);
        }
        return inserted;
    }

    [LoggerMessage(LogLevel.Error, "Storing {Requests} webhook requests failed: {Error}")]
    private static partial void LogInsertFailed(ILogger logger, int requests, string error);
}

/// <summary>The writer stopped (shutdown) before the events were stored: the caller answers 503, Tencent retries.</summary>
public sealed class EmailEventWriterStoppedException() : Exception("The event writer is stopping; the events were not stored.");
