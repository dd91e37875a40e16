using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;

namespace SendEngine.Features.SendJobs;

/// <summary>A claimed recipient on its way to a worker.</summary>
internal sealed record Claimed(long Id, string Email, string Preferences, string UnsubscribeUrl, int Attempts);

/// <summary>How one attempt is recorded: sent, back to pending with a backoff (transient), or failed.</summary>
internal readonly record struct AttemptResult(long Id, string Status, string? MessageId, string Detail, TimeSpan? RetryDelay);

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
    // $1 ids, $2 runner, $3 lease_until, $4 now.
    private const string MarkSql = """
        UPDATE send_job_recipients SET status = 'sending', attempts = attempts + 1, lease_until = $3, updated_at = $4
        WHERE id = ANY($1) AND claimed_by = $2 AND status = 'claimed'
        RETURNING id
        """;

    // $1 ids, $2 statuses, $3 message ids, $4 details, $5 next_attempt_at (NULL unless retried), $6 now.
    private const string RecordSql = """
        UPDATE send_job_recipients r SET status = d.status,
            message_id = CASE WHEN d.status = 'pending' THEN r.message_id ELSE d.message_id END, detail = d.detail, updated_at = $6,
            sent_at = CASE WHEN d.status = 'sent' THEN $6 ELSE r.sent_at END, next_attempt_at = d.next_attempt_at,
            claimed_by = NULL, lease_until = NULL
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS d(id, status, message_id, detail, next_attempt_at)
        WHERE r.id = d.id
        """;

    // $1 ids, $2 runner.
    private const string UnmarkSql = """
        UPDATE send_job_recipients SET status = 'claimed', attempts = attempts - 1 WHERE id = ANY($1) AND claimed_by = $2 AND status = 'sending'
        """;

    private readonly NpgsqlConnection _conn;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _lease;
    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    // The mark first, so the batch's first result set is its RETURNING.
    private readonly NpgsqlBatch _markAndRecord;
    private readonly NpgsqlBatch _mark;
    private readonly NpgsqlBatch _record;
    private readonly NpgsqlBatch _unmark;
    private readonly HashSet<NpgsqlBatch> _prepared = [];
    private readonly Task _loop;
    private long _roundTrips;

    private DeliveryLedger(NpgsqlConnection conn, Guid runnerId, TimeProvider clock, TimeSpan lease)
    {
        _conn = conn;
        _clock = clock;
        _lease = lease;
        _markAndRecord = Batch(conn, runnerId, MarkSql, RecordSql);
        _mark = Batch(conn, runnerId, MarkSql);
        _record = Batch(conn, runnerId, RecordSql);
        _unmark = Batch(conn, runnerId, UnmarkSql);
        _loop = Task.Run(LoopAsync);
    }

    public static async Task<DeliveryLedger> OpenAsync(NpgsqlDataSource db, Guid runnerId, TimeProvider clock, TimeSpan lease, CancellationToken ct)
    {
        var conn = await db.OpenConnectionAsync(ct);
        try
        {
            // A Send Engine crash loses nothing committed; only a PostgreSQL crash could lose the last few hundred ms
            // of updates (re-sending those rows). One fsync per round trip would cap throughput far below the SMTP rate.
            await Sql.ExecuteAsync(conn, "SET synchronous_commit TO off", ct);
            return new DeliveryLedger(conn, runnerId, clock, lease);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
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
        return Submit(new Request(Take(results), [], []));
    }

    /// <summary>Records <paramref name="results"/> (and clears the list) and marks <paramref name="next"/> 'sending'; returns the rows whose mark took.</summary>
    public async Task<List<Claimed>> RecordAndMarkAsync(List<AttemptResult> results, List<Claimed> next)
    {
        var request = new Request(Take(results), [.. next.Select(r => r.Id)], []);
        await Submit(request);
        return next.Where(r => request.Marked.Contains(r.Id)).ToList();
    }

    /// <summary>Hands marked rows that were never attempted back to the runner's claims (the attempt did not happen).</summary>
    public Task UnmarkAsync(long[] ids) => ids.Length == 0 ? Task.CompletedTask : Submit(new Request([], [], ids));

    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        await _loop;
        try
        {
            // Pooled connections are reused without DISCARD ALL (PostgresDefaults.Tuned): the relaxed commit must not
            // follow this connection into code that promises durability (webhook storage, the API).
            await Sql.ExecuteAsync(_conn, "RESET synchronous_commit", CancellationToken.None);
        }
        catch (NpgsqlException)
        {
            // A broken connection is not returned to the pool.
        }
        foreach (var batch in new[] { _markAndRecord, _mark, _record, _unmark })
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
        if (marks.Length == 0)
        {
            SetRecord(_record.BatchCommands[0], results, now);
            await ExecuteAsync(_record, null);
            return;
        }
        var batch = results.Length > 0 ? _markAndRecord : _mark;
        var mark = batch.BatchCommands[0].Parameters;
        ((NpgsqlParameter<long[]>)mark[0]).TypedValue = marks;
        ((NpgsqlParameter<DateTimeOffset>)mark[2]).TypedValue = now + _lease;
        ((NpgsqlParameter<DateTimeOffset>)mark[3]).TypedValue = now;
        if (results.Length > 0)
        {
            SetRecord(batch.BatchCommands[1], results, now);
        }
        var marked = new HashSet<long>();
        await ExecuteAsync(batch, marked);
        foreach (var request in waiting)
        {
            request.Marked.UnionWith(request.Marks.Where(marked.Contains));
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

    private async Task ExecuteAsync(NpgsqlBatch batch, HashSet<long>? marked)
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
                    marked.Add(reader.GetInt64(0));
                }
                return;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < 3)
            {
                // The whole batch was rolled back; its statements are safe to run again.
            }
        }
    }

    private static NpgsqlBatch Batch(NpgsqlConnection conn, Guid runner, params string[] statements)
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
                    break;
            }
            batch.BatchCommands.Add(cmd);
        }
        return batch;
    }

    /// <summary>One worker's part of a round trip; <see cref="Marked"/> is filled before <see cref="Done"/> completes.</summary>
    private sealed class Request(AttemptResult[] results, long[] marks, long[] unmark)
    {
        public AttemptResult[] Results { get; } = results;
        public long[] Marks { get; } = marks;
        public long[] Unmark { get; } = unmark;
        public HashSet<long> Marked { get; } = [];
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
