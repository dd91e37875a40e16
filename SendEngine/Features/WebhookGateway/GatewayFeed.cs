using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using Npgsql;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The live view's fan-out: one loop per process reads the entries inserted since its cursor (webhook_gateway_entries.seq,
/// assigned once on insert) and the entries that changed since (attributed to a tenant, processed, applied: announced by
/// whoever changed them with pg_notify on <see cref="Channel"/>, in their own transaction, so nothing is renumbered),
/// and encodes each pass once per scope: the <c>event: entry</c> frames of that scope's entries, UTF-8, in chunks of up to
/// <see cref="ChunkBytes"/> (<see cref="GatewayFrames"/>) that every watcher of the scope receives as they are, however
/// many there are (a watcher's request writes the bytes; nothing is built per watcher). This process's writer wakes it at
/// once (at most every <see cref="WebhookGatewayOptions.StreamMinInterval"/>); the shared poll runs every
/// <see cref="WebhookGatewayOptions.StreamPollInterval"/>. Without watchers it queries nothing and holds no connection;
/// with watchers it holds one (LISTEN). A watcher that falls behind loses its oldest chunks, never slows the loop.
/// Best effort: an entry whose transaction commits after a later one was read can be missed; the list is authoritative.
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
    private long? _cursor;

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
    /// relying on it: from then on every new entry of the scope is delivered.</summary>
    public Watcher Watch(Guid? tenantId)
    {
        var watcher = new Watcher(this, tenantId, options.Value.StreamBuffer);
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
                    await PassAsync(stoppingToken);
                    await Task.Delay(o.StreamMinInterval, clock, stoppingToken);
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

    private async Task PassAsync(CancellationToken ct)
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
            return;
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
            _cursor = await store.MaxSeqAsync(ct);
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
                var batch = await store.SinceAsync(cursor, 1000, ct);
                foreach (var (seq, entry) in batch)
                {
                    cursor = seq;
                    sent.Add(Guid.Parse(entry.EntryId));
                    Encode(entry);
                }
                _cursor = cursor;
                if (batch.Count < 1000)
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
                foreach (var entry in await store.ByIdsAsync(changed, ct))
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
        JsonSerializer.Serialize(scope.Json, entry, options);
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

        /// <summary>Hands the chunk (one copy, shared by all) to every watcher of the scope and starts the next.</summary>
        public void Post()
        {
            if (Entries == 0)
            {
                return;
            }
            var frames = new GatewayFrames(Buffer.WrittenSpan.ToArray(), Entries);
            foreach (var w in Watchers)
            {
                w.Writer.TryWrite(frames);
            }
            Buffer.ResetWrittenCount();
            Entries = 0;
        }
    }

    [LoggerMessage(LogLevel.Warning, "Webhook gateway live view: reading new entries failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string error);

    public sealed class Watcher : IDisposable
    {
        private readonly GatewayFeed _feed;
        private readonly System.Threading.Channels.Channel<GatewayFrames> _channel;

        internal Watcher(GatewayFeed feed, Guid? tenantId, int buffer)
        {
            _feed = feed;
            TenantId = tenantId;
            // Bounded in chunks: a watcher that falls behind by more loses its oldest chunks (whole frames, never part of one).
            _channel = System.Threading.Channels.Channel.CreateBounded<GatewayFrames>(new BoundedChannelOptions(buffer)
            {
                FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = true,
            });
        }

        public Guid? TenantId { get; }
        internal TaskCompletionSource ReadySource { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Ready => ReadySource.Task;
        internal ChannelWriter<GatewayFrames> Writer => _channel.Writer;
        /// <summary>The scope's entries as pre-encoded server-sent events, in order, chunk by chunk.</summary>
        public ChannelReader<GatewayFrames> Reader => _channel.Reader;

        public void Dispose()
        {
            _feed.Leave(this);
            _channel.Writer.TryComplete();
        }
    }
}

/// <summary>Consecutive entries of one scope as UTF-8 server-sent events (<c>event: entry\ndata: {summary}\n\n</c> each),
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
