using System.Buffers;
using System.Text.Json;
using System.IO.Pipelines;
using Npgsql;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The live view's fan-out: one loop per process takes the entries inserted since its cursor (webhook_gateway_entries.seq,
/// assigned once on insert) as this process's writer hands them over (<see cref="Committed"/>: no read-back of its own
/// entries), reads from the database only the seqs no hand-over covered (other processes' entries), and reads the entries
/// that changed since (attributed to a tenant, processed, applied: announced by
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
    // This process's writer hands its committed entries over here (only while somebody watches): the loop streams them
    // without reading them back, and reads only the other seqs from the database.
    private readonly Lock _handoffGate = new();
    private List<(long Seq, GatewayEntrySummary Entry)> _handedOver = [];
    private readonly SortedDictionary<long, GatewayEntrySummary> _local = [];
    private volatile bool _watched;
    private long _handedOverCount;
    private long _readBackCount;

    /// <summary>Entries handed over and not taken by a pass yet, at most: past it (the loop is stalled) the writer's
    /// entries are dropped here and read from the database like another process's.</summary>
    public const int MaxHandedOver = 100_000;

    /// <summary>Rows per read of the seqs this process did not write.</summary>
    private const int ReadLimit = 1000;

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

    /// <summary>Entries streamed as this process's writer handed them over, and as read from the database (new ones,
    /// not counting changed ones read again).</summary>
    public long EntriesHandedOver => Interlocked.Read(ref _handedOverCount);
    public long EntriesReadBack => Interlocked.Read(ref _readBackCount);

    /// <summary>Somebody watches: the writer hands its committed entries over (<see cref="Committed"/>).</summary>
    public bool Watched => _watched;

    /// <summary>
    /// Entries this process's writer has just committed, with their seq and their state at commit (pending, duplicate,
    /// rejected…), from the writer's own statement. The feed streams them as they are; a later change reaches it by
    /// notification like any other. Ignored while nobody watches; dropped beyond <see cref="MaxHandedOver"/>, in which
    /// case they are read back from the database.
    /// </summary>
    public void Committed(IReadOnlyList<(long Seq, GatewayEntrySummary Entry)> entries)
    {
        if (!_watched || entries.Count == 0)
        {
            return;
        }
        lock (_handoffGate)
        {
            if (_handedOver.Count + entries.Count <= MaxHandedOver)
            {
                _handedOver.AddRange(entries);
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
            _watched = true;
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
            _watched = _watchers.Count > 0;
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
            try
            {
                // Pooled connections are not reset on close (No Reset On Close): the next user gets neither the
                // notifications nor the planner settings.
                await using var reset = new NpgsqlCommand("UNLISTEN *; RESET plan_cache_mode; RESET max_parallel_workers_per_gather", l);
                await reset.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
            {
                // Broken: it is not returned to the pool.
            }
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
            lock (_handoffGate)
            {
                _handedOver.Clear();
            }
            _local.Clear();
            return watchers;
        }
        if (_listener is null)
        {
            // Listening before the cursor is read: no change committed after it can be missed. The feed's reads run on
            // this connection too, planned for each execution (a generic plan for "seq > $1" is a sequential scan) and
            // without parallel workers (with the BRIN index seq had, the planner started one for every read: 100-200 ms
            // and a process start each time, for a read of 9 ms without).
            var listener = await db.OpenConnectionAsync(ct);
            listener.Notification += OnNotification;
            await using (var listen = new NpgsqlCommand(
                $"SET plan_cache_mode = force_custom_plan; SET max_parallel_workers_per_gather = 0; LISTEN {Channel}", listener))
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
        var conn = _listener;
        // The changes announced so far: each was committed before the reads below, so an entry read from the database
        // already shows it. Notifications arriving during the reads wait for the next pass.
        Guid[] changed;
        lock (_gate)
        {
            changed = [.. _changed];
            _changed.Clear();
        }
        List<(long Seq, GatewayEntrySummary Entry)> handedOver;
        lock (_handoffGate)
        {
            handedOver = _handedOver;
            _handedOver = [];
        }
        if (_cursor is not { } cursor)
        {
            _cursor = new GatewaySeqCursor(await store.MaxSeqAsync(ct), options.Value.StreamGapWait, clock);
            _local.Clear();
        }
        else
        {
            Group(watchers);
            RefillAllowances();
            foreach (var (seq, entry) in handedOver)
            {
                if (seq > cursor.Position)
                {
                    _local[seq] = entry;
                }
            }
            // Read from the database: the entries of this pass that were not handed over (written by another process,
            // or by this one and not handed over yet); a changed one among them is read in its current state.
            var read = new HashSet<Guid>();
            while (true)
            {
                var (from, to) = NotHandedOver(cursor.Position);
                var rows = await GatewayStore.SinceAsync(conn, cursor.Position, from, to, ReadLimit, ct);
                // A full read may stop short of the handed-over seqs beyond its last row: those wait for the next read.
                var upTo = rows.Count == ReadLimit ? rows[^1].Seq : long.MaxValue;
                var merged = Merge(rows, upTo);
                // Up to the first gap still awaited: the rest is read again once it is filled (or given up).
                var taken = cursor.Advance(merged.ConvertAll(m => m.Seq));
                foreach (var (_, entry, fromDatabase) in merged.Take(taken))
                {
                    if (fromDatabase)
                    {
                        read.Add(Guid.Parse(entry.EntryId));
                        Interlocked.Increment(ref _readBackCount);
                    }
                    else
                    {
                        Interlocked.Increment(ref _handedOverCount);
                    }
                    Encode(entry);
                }
                while (_local.Count > 0 && _local.First().Key <= cursor.Position)
                {
                    _local.Remove(_local.First().Key);
                }
                if (rows.Count < ReadLimit || taken < merged.Count)
                {
                    break;
                }
            }
            // Changed entries only matter to watchers of their scope; read them by id (primary key). One the cursor has
            // not reached yet is kept for a later pass: it is streamed first when the cursor gets there (from the writer's
            // hand-over, as committed), then again as it is now.
            var again = changed.Where(id => !read.Contains(id)).ToArray();
            if (again.Length > 0)
            {
                foreach (var (seq, entry) in await GatewayStore.ByIdsAsync(conn, again, ct))
                {
                    if (seq <= cursor.Position)
                    {
                        Encode(entry);
                    }
                    else
                    {
                        lock (_gate)
                        {
                            _changed.Add(Guid.Parse(entry.EntryId));
                        }
                    }
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

    /// <summary>The seq ranges after <paramref name="position"/> that hold no handed-over entry, the last one open.</summary>
    private (long[] From, long[] To) NotHandedOver(long position)
    {
        List<long> from = [], to = [];
        var previous = position;
        foreach (var seq in _local.Keys)
        {
            if (seq > previous + 1)
            {
                from.Add(previous + 1);
                to.Add(seq - 1);
            }
            previous = seq;
        }
        from.Add(previous + 1);
        to.Add(long.MaxValue);
        return ([.. from], [.. to]);
    }

    /// <summary>The rows read and the handed-over entries up to <paramref name="upTo"/>, in seq order.</summary>
    private List<(long Seq, GatewayEntrySummary Entry, bool FromDatabase)> Merge(List<(long Seq, GatewayEntrySummary Summary)> rows, long upTo)
    {
        var merged = new List<(long, GatewayEntrySummary, bool)>(rows.Count + _local.Count);
        var i = 0;
        foreach (var (seq, entry) in _local)
        {
            if (seq > upTo)
            {
                break;
            }
            for (; i < rows.Count && rows[i].Seq < seq; i++)
            {
                merged.Add((rows[i].Seq, rows[i].Summary, true));
            }
            // The same seq read back too (handed over meanwhile): once, as read.
            if (i < rows.Count && rows[i].Seq == seq)
            {
                continue;
            }
            merged.Add((seq, entry, false));
        }
        for (; i < rows.Count; i++)
        {
            merged.Add((rows[i].Seq, rows[i].Summary, true));
        }
        return merged;
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

    /// <summary>
    /// Each scope's allowance of entries for the next pass (<see cref="WebhookGatewayOptions.StreamMaxEntriesPerSecond"/>):
    /// the time since the last refill's worth, up to one second's. A scope seen for the first time starts full.
    /// </summary>
    private void RefillAllowances()
    {
        var perSecond = options.Value.StreamMaxEntriesPerSecond;
        var now = clock.GetTimestamp();
        foreach (var scope in _scopes.Values)
        {
            if (perSecond == 0)
            {
                scope.Allowance = int.MaxValue;
                continue;
            }
            var earned = scope.RefilledAt is { } at ? clock.GetElapsedTime(at, now).TotalSeconds * perSecond : perSecond;
            scope.Allowance = Math.Min(perSecond, scope.Allowance + earned);
            scope.RefilledAt = now;
        }
    }

    /// <summary>Appends the entry's frame to its scope's chunk (serialized straight to UTF-8, once, whatever the number of
    /// watchers), or counts it skipped once the scope's allowance is spent; an entry of a scope nobody watches costs
    /// nothing.</summary>
    private void Encode(GatewayEntrySummary entry)
    {
        if (!_scopes.TryGetValue(entry.TenantId is null ? Guid.Empty : Guid.Parse(entry.TenantId), out var scope))
        {
            return;
        }
        if (scope.Allowance < 1)
        {
            scope.Skipped++;
            return;
        }
        scope.Allowance--;
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
            scope.Post(passEnd: false);
        }
    }

    /// <summary>One scope's frames of the pass so far.</summary>
    private sealed class ScopeFrames
    {
        public List<Watcher> Watchers { get; } = [];
        public ArrayBufferWriter<byte> Buffer { get; } = new(ChunkBytes + 4096);
        public Utf8JsonWriter? Json { get; set; }
        public int Entries { get; set; }

        /// <summary>Entries the scope may still stream (see <see cref="RefillAllowances"/>), and when it was last refilled.</summary>
        public double Allowance { get; set; }
        public long? RefilledAt { get; set; }

        /// <summary>Entries of this pass left out for the allowance, told in an <c>event: skipped</c> at the pass's end.</summary>
        public int Skipped { get; set; }

        /// <summary>Queues the chunk (one copy, shared by all) for every watcher of the scope and starts the next; at the
        /// pass's end (<paramref name="passEnd"/>) the chunk ends with the pass's skipped entries.</summary>
        public void Post(bool passEnd = true)
        {
            if (passEnd && Skipped > 0)
            {
                WriteCount(Buffer, "event: skipped\ndata: {\"skipped_entries\":"u8, Skipped);
                // Counted with the chunk's entries: a watcher that loses the chunk is told they were not shown either.
                Entries += Skipped;
                Skipped = 0;
            }
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

    /// <summary>An event whose data is one count (<paramref name="start"/> ends with the field's name and colon): the
    /// <c>lost</c> and <c>skipped</c> notices.</summary>
    private static void WriteCount(IBufferWriter<byte> to, ReadOnlySpan<byte> start, long count)
    {
        to.Write(start);
        Span<byte> digits = stackalloc byte[20];
        count.TryFormat(digits, out var n, provider: System.Globalization.CultureInfo.InvariantCulture);
        to.Write(digits[..n]);
        to.Write("}\n\n"u8);
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
                        WriteCount(body, "event: lost\ndata: {\"lost_entries\":"u8, _lostPending);
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
