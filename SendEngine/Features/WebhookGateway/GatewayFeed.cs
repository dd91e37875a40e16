using System.Buffers;
using System.Text.Json;
using System.IO.Pipelines;
using Npgsql;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The live view's fan-out: one loop per process reads the entries inserted since its cursor (webhook_gateway_entries.seq,
/// assigned once on insert) and the entries that changed since (attributed to a tenant, processed, applied: announced by
/// whoever changed them with pg_notify on <see cref="Channel"/>, in their own transaction, so nothing is renumbered),
/// and encodes each pass once per scope: the <c>event: entry</c> frames of that scope's entries (<see cref="GatewayStreamEntry"/>:
/// the table's columns, not the list's summary), UTF-8, in chunks of up to
/// <see cref="ChunkBytes"/> (<see cref="GatewayFrames"/>) that every watcher of the scope receives as they are, however
/// many there are (nothing is built per watcher). The same loop then writes them: it serves the watchers in
/// <see cref="WebhookGatewayOptions.StreamPhases"/> groups spread evenly over <see cref="WebhookGatewayOptions.StreamMinInterval"/>
/// (each watcher in its own phase), copying a watcher's queued chunks into its response pipe and flushing once, so 100
/// watchers are neither 100 tasks woken together nor 100 flushes landing together on the cores the webhook needs.
/// This process's writer wakes it at once (at most every StreamMinInterval); the shared poll runs every
/// <see cref="WebhookGatewayOptions.StreamPollInterval"/>. Without watchers it queries nothing and holds no connection;
/// with watchers it holds one (LISTEN). A watcher that falls behind loses its oldest chunks and is told (an
/// <c>event: lost</c>), never slows the loop. Entries are streamed once each in seq order: the cursor waits at a seq not
/// yet committed (<see cref="GatewaySeqCursor"/>), up to <see cref="WebhookGatewayOptions.StreamGapWait"/>.
/// </summary>
public sealed partial class GatewayFeed(NpgsqlDataSource db, GatewayStore store, WakeSignal<GatewayFeed> signal, IOptions<WebhookGatewayOptions> options,
    IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider clock, ILogger<GatewayFeed> logger) : BackgroundService
{
    /// <summary>The notification channel; the payload is entry ids (32 hex digits each) separated by commas.</summary>
    public const string Channel = "webhook_gateway";

    /// <summary>SQL that announces the ids in column <paramref name="column"/> of <paramref name="from"/> (a CTE or table
    /// expression) to the live views, 200 per notification (the payload limit is 8,000 bytes); nothing when it is empty.</summary>
    public static string NotifySql(string from, string column) => $"""
        SELECT pg_notify('{Channel}', string_agg(h, ','))
        FROM (SELECT replace({column}::text, '-', '') AS h, (row_number() OVER () - 1) / 200 AS part FROM {from}) x GROUP BY part
        """;

    /// <summary>A chunk is closed once it holds this many bytes: small enough to stay off the large object heap, large
    /// enough that a busy pass is a handful of chunks.</summary>
    public const int ChunkBytes = 32 * 1024;

    private static ReadOnlySpan<byte> FrameStart => "event: entry\ndata: "u8;
    private static ReadOnlySpan<byte> FrameEnd => "\n\n"u8;

    private readonly Lock _gate = new();
    // Per scope (Guid.Empty: the platform log) with watchers: the chunk being filled; reused pass after pass.
    private readonly Dictionary<Guid, ScopeFrames> _scopes = [];
    private readonly HashSet<Watcher> _watchers = [];
    private readonly List<Watcher> _joining = [];
    private readonly HashSet<Guid> _changed = [];
    private NpgsqlConnection? _listener;
    private GatewaySeqCursor? _cursor;

    public int Watchers
    {
        get
        {
            lock (_gate)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>Watches one scope: a tenant's log, or the platform's (null). Await <see cref="Watcher.Ready"/> before
    /// relying on it: from then on every new entry of the scope is queued for it; <see cref="Watcher.Attach"/> hands the
    /// feed the response to write them to.</summary>
    public Watcher Watch(Guid? tenantId)
    {
        var watcher = new Watcher(tenantId, options.Value.StreamBuffer, Leave);
        lock (_gate)
        {
            _watchers.Add(watcher);
            _joining.Add(watcher);
        }
        signal.Notify();
        return watcher;
    }

    private void Leave(Watcher watcher)
    {
        lock (_gate)
        {
            _watchers.Remove(watcher);
            _joining.Remove(watcher);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await signal.WaitAsync(o.StreamPollInterval, clock, stoppingToken);
                    var watchers = await PassAsync(stoppingToken);
                    await ServeAsync(watchers, o, stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    LogFailed(logger, ex.Message);
                    await CloseListenerAsync();
                    await Task.Delay(o.StreamPollInterval, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }
        }
        finally
        {
            await CloseListenerAsync();
            // Nobody writes to the streams any more: their requests end.
            lock (_gate)
            {
                foreach (var w in _watchers)
                {
                    w.End();
                }
            }
        }
    }

    /// <summary>
    /// Writes the pass's chunks to the watchers over the minimum interval: watcher i of n in phase i × phases / n, phase k
    /// served k/phases of the interval after the pass. One loop, one timer per phase: the writes and flushes of a pass are
    /// spread instead of landing together, and no task per watcher wakes. A watcher joining meanwhile is served from the
    /// next pass on; one leaving is skipped (<see cref="Watcher.Serve"/> checks).
    /// </summary>
    private async Task ServeAsync(Watcher[] watchers, WebhookGatewayOptions o, CancellationToken ct)
    {
        var start = clock.GetTimestamp();
        var phases = Math.Max(1, Math.Min(o.StreamPhases, watchers.Length));
        var next = 0;
        for (var k = 0; k < phases; k++)
        {
            var wait = o.StreamMinInterval * k / phases - clock.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, clock, ct);
            }
            var now = clock.GetUtcNow();
            for (var end = (int)((long)watchers.Length * (k + 1) / phases); next < end; next++)
            {
                watchers[next].Serve(now, o.StreamHeartbeat);
            }
        }
        var rest = o.StreamMinInterval - clock.GetElapsedTime(start);
        if (rest > TimeSpan.Zero)
        {
            await Task.Delay(rest, clock, ct);
        }
    }

    private async Task CloseListenerAsync()
    {
        if (_listener is { } l)
        {
            _listener = null;
            _cursor = null;
            await l.DisposeAsync();
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        lock (_gate)
        {
            foreach (var id in e.Payload.Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                if (Guid.TryParseExact(id, "N", out var g))
                {
                    _changed.Add(g);
                }
            }
        }
    }

    /// <summary>One pass: queues the new and changed entries' frames for the watchers of their scope; returns the watchers
    /// of the pass, to be served.</summary>
    private async Task<Watcher[]> PassAsync(CancellationToken ct)
    {
        Watcher[] watchers, joined;
        lock (_gate)
        {
            watchers = [.. _watchers];
            joined = [.. _joining];
            _joining.Clear();
        }
        if (watchers.Length == 0)
        {
            _scopes.Clear();
            await CloseListenerAsync();
            lock (_gate)
            {
                _changed.Clear();
            }
            return watchers;
        }
        if (_listener is null)
        {
            // Listening before the cursor is read: no change committed after it can be missed.
            var listener = await db.OpenConnectionAsync(ct);
            listener.Notification += OnNotification;
            await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", listener))
            {
                await listen.ExecuteNonQueryAsync(ct);
            }
            _listener = listener;
        }
        else
        {
            // Any round trip delivers the notifications that arrived meanwhile (OnNotification).
            await using var ping = new NpgsqlCommand("SELECT 1", _listener);
            await ping.ExecuteScalarAsync(ct);
        }
        if (_cursor is not { } cursor)
        {
            _cursor = new GatewaySeqCursor(await store.MaxSeqAsync(ct), options.Value.StreamGapWait, clock);
            lock (_gate)
            {
                _changed.Clear();
            }
        }
        else
        {
            Group(watchers);
            var sent = new HashSet<Guid>();
            while (true)
            {
                var batch = await store.SinceAsync(cursor.Position, 1000, ct);
                // Up to the first gap still awaited: the rest is read again once it is filled (or given up).
                var taken = cursor.Advance(batch.ConvertAll(b => b.Seq));
                foreach (var (_, entry) in batch.Take(taken))
                {
                    sent.Add(Guid.Parse(entry.EntryId));
                    Encode(entry);
                }
                if (taken < 1000)
                {
                    break;
                }
            }
            Guid[] changed;
            lock (_gate)
            {
                changed = [.. _changed.Where(id => !sent.Contains(id))];
                _changed.Clear();
            }
            // Changed entries only matter to watchers of their scope; read them by id (primary key).
            if (changed.Length > 0)
            {
                foreach (var entry in await store.ByIdsAsync(changed, cursor.Position, ct))
                {
                    Encode(entry);
                }
            }
            foreach (var scope in _scopes.Values)
            {
                scope.Post();
            }
        }
        foreach (var w in joined)
        {
            w.ReadySource.TrySetResult();
        }
        return watchers;
    }

    /// <summary>This pass's watchers by scope; scopes nobody watches any more are forgotten.</summary>
    private void Group(Watcher[] watchers)
    {
        foreach (var scope in _scopes.Values)
        {
            scope.Watchers.Clear();
        }
        foreach (var w in watchers)
        {
            var key = w.TenantId ?? Guid.Empty;
            if (!_scopes.TryGetValue(key, out var scope))
            {
                _scopes[key] = scope = new ScopeFrames();
            }
            scope.Watchers.Add(w);
        }
        foreach (var (key, scope) in _scopes)
        {
            if (scope.Watchers.Count == 0)
            {
                _scopes.Remove(key);
            }
        }
    }

    /// <summary>Appends the entry's frame to its scope's chunk (serialized straight to UTF-8, once, whatever the number of
    /// watchers); an entry of a scope nobody watches costs nothing.</summary>
    private void Encode(GatewayEntrySummary entry)
    {
        if (!_scopes.TryGetValue(entry.TenantId is null ? Guid.Empty : Guid.Parse(entry.TenantId), out var scope))
        {
            return;
        }
        var buffer = scope.Buffer;
        buffer.Write(FrameStart);
        var options = json.Value.SerializerOptions;
        // The writer's options decide the output (the serializer's Encoder and indentation are not applied to a given writer):
        // the same escaping as the API's JSON, on one line (a line break would end the event's data).
        scope.Json ??= new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = options.Encoder, Indented = false });
        scope.Json.Reset(buffer);
        // The stream's own shape (GatewayStreamEntry): what the table shows. Its bytes go to every watcher of the scope,
        // through their sockets and processes on the cores the webhook needs; the detail is one GET away.
        JsonSerializer.Serialize(scope.Json, new GatewayStreamEntry(entry.EntryId, entry.ReceivedAt, entry.Source, entry.Verification,
            entry.StatusCode, entry.Events, entry.Result, entry.EventTypes), options);
        buffer.Write(FrameEnd);
        scope.Entries++;
        if (buffer.WrittenCount >= ChunkBytes)
        {
            scope.Post();
        }
    }

    /// <summary>One scope's frames of the pass so far.</summary>
    private sealed class ScopeFrames
    {
        public List<Watcher> Watchers { get; } = [];
        public ArrayBufferWriter<byte> Buffer { get; } = new(ChunkBytes + 4096);
        public Utf8JsonWriter? Json { get; set; }
        public int Entries { get; set; }

        /// <summary>Queues the chunk (one copy, shared by all) for every watcher of the scope and starts the next.</summary>
        public void Post()
        {
            if (Entries == 0)
            {
                return;
            }
            var frames = new GatewayFrames(Buffer.WrittenSpan.ToArray(), Entries);
            foreach (var w in Watchers)
            {
                w.Post(frames);
            }
            Buffer.ResetWrittenCount();
            Entries = 0;
        }
    }

    [LoggerMessage(LogLevel.Warning, "Webhook gateway live view: reading new entries failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string error);

    /// <summary>
    /// One watcher: its queue of chunks (bounded: <see cref="WebhookGatewayOptions.StreamBuffer"/>) and, once attached, the
    /// response it is written to. The feed's loop is the only one that posts and writes; the request only attaches and,
    /// when it ends, closes (after which the response is never touched again).
    /// </summary>
    public sealed class Watcher : IDisposable
    {
        private static ReadOnlySpan<byte> Heartbeat => ": heartbeat\n\n"u8;

        private readonly Action<Watcher>? _leave;
        private readonly int _buffer;
        private readonly Lock _gate = new();
        private readonly Queue<GatewayFrames> _queue = new();
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private PipeWriter? _body;
        private Task<FlushResult>? _flushing;
        private DateTimeOffset _lastWrite;
        // Dropped and not told yet; told so far.
        private long _lostPending;
        private long _lost;
        private bool _closed;

        internal Watcher(Guid? tenantId, int buffer, Action<Watcher>? leave = null)
        {
            TenantId = tenantId;
            _buffer = buffer;
            _leave = leave;
        }

        public Guid? TenantId { get; }
        internal TaskCompletionSource ReadySource { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Ready => ReadySource.Task;

        /// <summary>Completes when the feed stops writing to this watcher (the write failed, or the feed stopped).</summary>
        public Task Done => _done.Task;

        /// <summary>Entries dropped for this watcher because it fell behind (and told it so).</summary>
        public long LostEntries
        {
            get
            {
                lock (_gate)
                {
                    return _lost;
                }
            }
        }

        /// <summary>From now on the feed writes this watcher's entries to <paramref name="body"/> (the caller has started the
        /// response and writes nothing more to it).</summary>
        public void Attach(PipeWriter body, DateTimeOffset now)
        {
            lock (_gate)
            {
                if (!_closed)
                {
                    _body = body;
                    _lastWrite = now;
                }
            }
        }

        /// <summary>Queues a chunk; a watcher already <see cref="WebhookGatewayOptions.StreamBuffer"/> chunks behind loses its
        /// oldest (whole events), counted for the <c>lost</c> event it gets next.</summary>
        internal void Post(GatewayFrames frames)
        {
            lock (_gate)
            {
                if (_closed)
                {
                    return;
                }
                _queue.Enqueue(frames);
                while (_queue.Count > _buffer)
                {
                    _lostPending += _queue.Dequeue().Entries;
                }
            }
        }

        /// <summary>
        /// Writes what is queued (a <c>lost</c> event first when entries were dropped), or a heartbeat comment when nothing
        /// was written for <paramref name="heartbeat"/>, and flushes once. A watcher whose previous flush has not completed
        /// (its client reads slower than the entries come) gets nothing now: its chunks wait in its queue.
        /// </summary>
        internal void Serve(DateTimeOffset now, TimeSpan heartbeat)
        {
            lock (_gate)
            {
                if (_closed || _body is not { } body)
                {
                    return;
                }
                try
                {
                    if (_flushing is { } previous)
                    {
                        if (!previous.IsCompleted)
                        {
                            return;
                        }
                        _flushing = null;
                        if (!previous.IsCompletedSuccessfully || previous.Result.IsCompleted || previous.Result.IsCanceled)
                        {
                            Stop();
                            return;
                        }
                    }
                    var wrote = false;
                    if (_lostPending > 0)
                    {
                        WriteLost(body, _lostPending);
                        _lost += _lostPending;
                        _lostPending = 0;
                        wrote = true;
                    }
                    while (_queue.TryDequeue(out var frames))
                    {
                        body.Write(frames.Bytes.Span);
                        wrote = true;
                    }
                    if (!wrote)
                    {
                        if (now - _lastWrite < heartbeat)
                        {
                            return;
                        }
                        body.Write(Heartbeat);
                    }
                    _lastWrite = now;
                    var flush = body.FlushAsync();
                    if (!flush.IsCompleted)
                    {
                        _flushing = flush.AsTask();
                    }
                    else if (flush.Result is { IsCompleted: true } or { IsCanceled: true })
                    {
                        Stop();
                    }
                }
                catch (Exception) when (!_closed)
                {
                    // The response is gone (the client left between two passes): its request ends.
                    Stop();
                }
            }
        }

        private static void WriteLost(PipeWriter body, long entries)
        {
            body.Write("event: lost\ndata: {\"lost_entries\":"u8);
            Span<byte> digits = stackalloc byte[20];
            entries.TryFormat(digits, out var n, provider: System.Globalization.CultureInfo.InvariantCulture);
            body.Write(digits[..n]);
            body.Write("}\n\n"u8);
        }

        // Under _gate.
        private void Stop()
        {
            _closed = true;
            _body = null;
            _queue.Clear();
            _done.TrySetResult();
        }

        /// <summary>The feed stops writing (it is stopping): the request ends.</summary>
        internal void End() => _done.TrySetResult();

        /// <summary>The request ends: after this the feed never touches its response. A flush still under way is cancelled
        /// and awaited (the response may only be completed once nobody writes to it).</summary>
        public async Task CloseAsync()
        {
            Task<FlushResult>? flushing;
            lock (_gate)
            {
                _body?.CancelPendingFlush();
                flushing = _flushing;
                _flushing = null;
                _closed = true;
                _body = null;
                _queue.Clear();
            }
            _done.TrySetResult();
            if (flushing is not null)
            {
                await ((Task)flushing).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        public void Dispose() => _leave?.Invoke(this);
    }
}

/// <summary>Consecutive entries of one scope as UTF-8 server-sent events (<c>event: entry\ndata: {GatewayStreamEntry}\n\n</c> each),
/// shared read-only by every watcher of the scope.</summary>
public readonly record struct GatewayFrames(ReadOnlyMemory<byte> Bytes, int Entries);

/// <summary>Trims the gateway log to the newest <see cref="WebhookGatewayOptions.KeepPerTenant"/> entries per tenant (and
/// in the platform log), every <see cref="WebhookGatewayOptions.SweepInterval"/>: the webhook itself never deletes.</summary>
public sealed partial class GatewaySweeper(Npgsql.NpgsqlDataSource db, IOptions<WebhookGatewayOptions> options, TimeProvider clock,
    ILogger<GatewaySweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.Value.SweepInterval, clock, stoppingToken);
                await SweepAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogFailed(logger, ex.Message);
            }
        }
    }

    /// <summary>One trim; returns the entries deleted.</summary>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        var keep = options.Value.KeepPerTenant;
        await using var conn = await db.OpenConnectionAsync(ct);
        var over = new List<Guid?>();
        await using (var cmd = Data.Sql.Command(conn, "SELECT tenant_id FROM webhook_gateway_entries GROUP BY tenant_id HAVING count(*) > $1", keep))
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                over.Add(reader.IsDBNull(0) ? null : reader.GetGuid(0));
            }
        }
        var deleted = 0;
        foreach (var tenant in over)
        {
            // Everything older than the keep-th newest (ix_webhook_gateway_entries_tenant_id_id).
            var scope = tenant is null ? "tenant_id IS NULL" : "tenant_id = $2";
            deleted += await Data.Sql.ExecuteAsync(conn, $"""
                DELETE FROM webhook_gateway_entries
                WHERE {scope} AND id < (SELECT id FROM webhook_gateway_entries WHERE {scope} ORDER BY id DESC OFFSET $1 - 1 LIMIT 1)
                """, ct, tenant is null ? [keep] : [keep, tenant]);
        }
        return deleted;
    }

    [LoggerMessage(LogLevel.Warning, "Webhook gateway trim failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string error);
}
