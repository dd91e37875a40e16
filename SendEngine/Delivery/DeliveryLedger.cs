using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using SendEngine.Data;
using SendEngine.Features.Reputation;
using SendEngine.Features.Webhooks;

namespace SendEngine.Delivery;

/// <summary>
/// A runner's durable record of its workers' attempts: <c>sending</c> marks before each SMTP transaction and results
/// after it. All workers' requests go through one database connection and are merged (group commit): whatever
/// requests are waiting when the previous round trip returns travel together as one prepared batch, one implicit
/// transaction. Every worker still waits for its own mark to commit before it sends, so the crash window stays what
/// the worker asked for (one row per connection by default) while the round trips, and PostgreSQL's per-statement and
/// per-commit work, are shared by all the runner's connections.
/// </summary>
internal sealed class DeliveryLedger : IAsyncDisposable
{
    private const string MarkSql = RecipientStore.MarkSendingSql;
    private const string RecordSql = RecipientStore.RecordResultsSql;
    private const string UnmarkSql = RecipientStore.UnmarkSql;
    private const string RecordEventsSql = RecipientStore.RecordResultsAndEventsSql;

    private readonly NpgsqlConnection _conn;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _lease;
    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    // The mark first, so the batch's first result set is its RETURNING.
    private readonly NpgsqlBatch _markAndRecord;
    private readonly NpgsqlBatch _mark;
    private readonly NpgsqlBatch _record;
    private readonly NpgsqlBatch _unmark;
    // The same with the tenant's webhook events, used while the tenant has an endpoint wanting a result type.
    private readonly NpgsqlBatch _markAndRecordEvents;
    private readonly NpgsqlBatch _recordEvents;
    private readonly WebhookPublisher? _webhooks;
    private readonly Guid _tenantId;
    private readonly HashSet<NpgsqlBatch> _prepared = [];
    private readonly Task _loop;
    private long _roundTrips;
    // The run's sending-limit reservations: told which rows each mark took, which results are recorded and which rows
    // are handed back; what it gives back goes in the same round trip.
    private readonly LimitReservations _reservations;

    private DeliveryLedger(NpgsqlConnection conn, Guid runnerId, TimeProvider clock, TimeSpan lease, WebhookPublisher? webhooks, Guid tenantId,
        LimitReservations reservations)
    {
        _reservations = reservations;
        _conn = conn;
        _clock = clock;
        _lease = lease;
        _webhooks = webhooks;
        _tenantId = tenantId;
        _markAndRecordEvents = Batch(conn, runnerId, MarkSql, RecordEventsSql);
        _recordEvents = Batch(conn, runnerId, RecordEventsSql);
        _markAndRecord = Batch(conn, runnerId, MarkSql, RecordSql);
        _mark = Batch(conn, runnerId, MarkSql);
        _record = Batch(conn, runnerId, RecordSql);
        _unmark = Batch(conn, runnerId, UnmarkSql);
        _loop = Task.Run(LoopAsync);
    }

    /// <param name="webhooks">With <paramref name="tenantId"/>: the results raise the tenant's webhook events (sent, deferred, rejected).</param>
    /// <param name="reservations">The run's sending-limit reservations (none: a new, empty book).</param>
    public static async Task<DeliveryLedger> OpenAsync(NpgsqlDataSource db, Guid runnerId, TimeProvider clock, TimeSpan lease, CancellationToken ct,
        WebhookPublisher? webhooks = null, Guid tenantId = default, LimitReservations? reservations = null)
    {
        // Synchronous commit (the server default): a 'sending' mark must survive a PostgreSQL crash, or the row would be
        // sent again. The group commit shares each fsync among all the runner's workers.
        // The runner passes the data source whose connections keep generic plans and never scan a table an index serves
        // (DataExtensions.GenericPlans): a job's first marks run while its snapshot is still being written, and a
        // generic plan allowed to scan, made then (a sequential scan of a nearly empty table), stayed for the whole job:
        // 7.0 ms per mark and 4.8 ms per record instead of 0.36 and 1.0 on a 100k list (bench --small 0 --profile).
        // Planning each execution instead cost a third of the two statements' time. A SET on a pooled connection of the
        // shared pool outlived the ledger (connections are not reset on close) and changed every later user of it.
        var conn = await db.OpenConnectionAsync(ct);
        return new DeliveryLedger(conn, runnerId, clock, lease, webhooks, tenantId, reservations ?? new LimitReservations());
    }

    /// <summary>Round trips made so far (each carries every request that was waiting when it started).</summary>
    public long RoundTrips => Interlocked.Read(ref _roundTrips);

    /// <summary>Records <paramref name="results"/> (and clears the list); nothing to do when it is empty.</summary>
    public Task RecordAsync(List<AttemptResult> results)
    {
        if (results.Count == 0)
        {
            return Task.CompletedTask;
        }
        var request = new Request(Take(results), [], [], []);
        Recorded(request.Results);
        return Submit(request);
    }

    /// <summary>
    /// Records <paramref name="results"/> (and clears the list) and marks <paramref name="next"/> 'sending'; returns the
    /// rows whose mark took, with their attempts before this one as the mark found them. The reservations of rows the
    /// mark did not take are given back (the limit counts the rows marked).
    /// </summary>
    public async Task<List<Claimed>> RecordAndMarkAsync(List<AttemptResult> results, List<Claimed> next)
    {
        var request = new Request(Take(results), [.. next.Select(r => r.Id)], [], []);
        Recorded(request.Results);
        try
        {
            await Submit(request);
        }
        catch when (_reservations.Holding)
        {
            // Whether the marks committed is unknown: their reservations stay (the limit is reached early, never passed).
            _reservations.Marked(request.Marks, _ => true);
            throw;
        }
        var marked = new List<Claimed>(next.Count);
        foreach (var r in next)
        {
            if (request.Marked.TryGetValue(r.Id, out var attempts))
            {
                marked.Add(r with { Attempts = attempts - 1 });
            }
        }
        if (_reservations.Holding)
        {
            var lost = _reservations.Marked(request.Marks, request.Marked.ContainsKey);
            if (lost.Length > 0)
            {
                await Submit(new Request([], [], [], lost));
            }
        }
        return marked;
    }

    /// <summary>
    /// Hands marked rows that were never attempted back to pending (the attempt did not happen), with their sending-limit
    /// reservations: they will be read, and counted, again.
    /// </summary>
    public Task UnmarkAsync(long[] ids)
    {
        if (ids.Length == 0)
        {
            return Task.CompletedTask;
        }
        return Submit(new Request([], [], ids, _reservations.Take(ids)));
    }

    /// <summary>Recorded rows keep their sending-limit reservations for good.</summary>
    private void Recorded(AttemptResult[] results)
    {
        if (_reservations.Holding)
        {
            _reservations.Recorded(results.Select(r => r.Id));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        await _loop;
        foreach (var batch in new[] { _markAndRecord, _mark, _record, _unmark, _markAndRecordEvents, _recordEvents })
        {
            await batch.DisposeAsync();
        }
        await _conn.DisposeAsync();
    }

    private static AttemptResult[] Take(List<AttemptResult> results)
    {
        var taken = results.ToArray();
        results.Clear();
        return taken;
    }

    private Task Submit(Request request)
    {
        if (!_requests.Writer.TryWrite(request))
        {
            return Task.FromException(new ObjectDisposedException(nameof(DeliveryLedger)));
        }
        return request.Done.Task;
    }

    private async Task LoopAsync()
    {
        var reader = _requests.Reader;
        var waiting = new List<Request>();
        while (await reader.WaitToReadAsync(CancellationToken.None))
        {
            waiting.Clear();
            while (reader.TryRead(out var request))
            {
                waiting.Add(request);
            }
            try
            {
                Interlocked.Increment(ref _roundTrips);
                await FlushAsync(waiting);
                foreach (var request in waiting)
                {
                    request.Done.TrySetResult();
                }
            }
            catch (Exception ex)
            {
                // Each waiting worker fails with it and stops the runner (see SendJobRunner.WorkerAsync).
                foreach (var request in waiting)
                {
                    request.Done.TrySetException(ex);
                }
            }
        }
    }

    private async Task FlushAsync(List<Request> waiting)
    {
        var now = _clock.GetUtcNow();
        if (waiting.Exists(r => r.Release.Length > 0))
        {
            // Sending-limit counts given back (rare: only a limited tenant's lost marks and hand-backs).
            await LimitReservations.ReturnAsync(_conn, [.. waiting.SelectMany(r => r.Release)], CancellationToken.None);
        }
        var unmark = waiting.SelectMany(r => r.Unmark).ToArray();
        if (unmark.Length > 0)
        {
            // Before the marks: a stopping worker's rows are not touched by anyone else's mark.
            ((NpgsqlParameter<long[]>)_unmark.BatchCommands[0].Parameters[0]).TypedValue = unmark;
            await ExecuteAsync(_unmark, null);
        }
        var results = waiting.SelectMany(r => r.Results).ToArray();
        var marks = waiting.SelectMany(r => r.Marks).ToArray();
        if (marks.Length == 0 && results.Length == 0)
        {
            return;
        }
        // A memory look-up per round trip (cached per tenant): no event rows, and no join, for a tenant that wants none.
        var events = results.Length > 0 && _webhooks is not null
            && (await _webhooks.SubscribedTypesAsync(_tenantId, CancellationToken.None)).Overlaps(WebhookPublisher.BulkResultTypes);
        if (marks.Length == 0)
        {
            var record = events ? _recordEvents : _record;
            SetRecord(record.BatchCommands[0], results, now);
            await ExecuteAsync(record, null);
            NotifyWebhooks(events);
            return;
        }
        var batch = results.Length > 0 ? events ? _markAndRecordEvents : _markAndRecord : _mark;
        var mark = batch.BatchCommands[0].Parameters;
        ((NpgsqlParameter<long[]>)mark[0]).TypedValue = marks;
        ((NpgsqlParameter<DateTimeOffset>)mark[2]).TypedValue = now + _lease;
        ((NpgsqlParameter<DateTimeOffset>)mark[3]).TypedValue = now;
        if (results.Length > 0)
        {
            SetRecord(batch.BatchCommands[1], results, now);
        }
        var marked = new Dictionary<long, int>();
        await ExecuteAsync(batch, marked);
        NotifyWebhooks(events);
        foreach (var request in waiting)
        {
            foreach (var id in request.Marks)
            {
                if (marked.TryGetValue(id, out var attempts))
                {
                    request.Marked[id] = attempts;
                }
            }
        }
    }

    private void NotifyWebhooks(bool events)
    {
        if (events)
        {
            _webhooks!.Notify();
        }
    }

    private static void SetRecord(NpgsqlBatchCommand cmd, AttemptResult[] results, DateTimeOffset now)
    {
        var p = cmd.Parameters;
        ((NpgsqlParameter<long[]>)p[0]).TypedValue = results.Select(r => r.Id).ToArray();
        ((NpgsqlParameter<string[]>)p[1]).TypedValue = results.Select(r => r.Status).ToArray();
        ((NpgsqlParameter<string?[]>)p[2]).TypedValue = results.Select(r => r.MessageId).ToArray();
        ((NpgsqlParameter<string[]>)p[3]).TypedValue = results.Select(r => r.Detail).ToArray();
        ((NpgsqlParameter<DateTime?[]>)p[4]).TypedValue = results.Select(r => r.RetryDelay is { } d ? (now + d).UtcDateTime : (DateTime?)null).ToArray();
        ((NpgsqlParameter<DateTimeOffset>)p[5]).TypedValue = now;
    }

    private async Task ExecuteAsync(NpgsqlBatch batch, Dictionary<long, int>? marked)
    {
        if (_prepared.Add(batch))
        {
            await batch.PrepareAsync(CancellationToken.None);
        }
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (marked is null)
                {
                    await batch.ExecuteNonQueryAsync(CancellationToken.None);
                    return;
                }
                marked.Clear();
                await using var reader = await batch.ExecuteReaderAsync(CancellationToken.None);
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    marked[reader.GetInt64(0)] = reader.GetInt32(1);
                }
                return;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < 3)
            {
                // The whole batch was rolled back; its statements are safe to run again.
            }
        }
    }

    private NpgsqlBatch Batch(NpgsqlConnection conn, Guid runner, params string[] statements)
    {
        var batch = new NpgsqlBatch(conn);
        foreach (var text in statements)
        {
            var cmd = new NpgsqlBatchCommand(text);
            var p = cmd.Parameters;
            switch (text)
            {
                case MarkSql:
                    p.Add(new NpgsqlParameter<long[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    p.Add(new NpgsqlParameter<Guid> { NpgsqlDbType = NpgsqlDbType.Uuid, TypedValue = runner });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    break;
                case UnmarkSql:
                    p.Add(new NpgsqlParameter<long[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    p.Add(new NpgsqlParameter<Guid> { NpgsqlDbType = NpgsqlDbType.Uuid, TypedValue = runner });
                    break;
                default:
                    p.Add(new NpgsqlParameter<long[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    p.Add(new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<string?[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<string[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<DateTime?[]> { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<Guid> { NpgsqlDbType = NpgsqlDbType.Uuid, TypedValue = runner });
                    if (text == RecordEventsSql)
                    {
                        p.Add(new NpgsqlParameter<Guid> { NpgsqlDbType = NpgsqlDbType.Uuid, TypedValue = _tenantId });
                    }
                    break;
            }
            batch.BatchCommands.Add(cmd);
        }
        return batch;
    }

    /// <summary>One worker's part of a round trip; <see cref="Marked"/> is filled before <see cref="Done"/> completes.</summary>
    private sealed class Request(AttemptResult[] results, long[] marks, long[] unmark, LimitSlot[] release)
    {
        public AttemptResult[] Results { get; } = results;
        public long[] Marks { get; } = marks;
        public long[] Unmark { get; } = unmark;
        public LimitSlot[] Release { get; } = release;
        public Dictionary<long, int> Marked { get; } = [];
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
