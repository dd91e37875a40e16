using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// Group commit for the webhook: concurrent requests queue their events here and a few writer loops insert whatever is
/// waiting as one multi-row INSERT … ON CONFLICT (idempotency_key) DO NOTHING (synchronous commit), then complete
/// each request with the keys that were new. A request is answered 200 only after its rows are committed.
/// </summary>
public sealed partial class EmailEventWriter(NpgsqlDataSource db, IOptions<EmailEventOptions> options,
    WakeSignal<EmailEventProcessor> signal,
    TimeProvider clock, ILogger<EmailEventWriter> logger) : BackgroundService
{
    private const int MaxRowsPerInsert = 1000;

    private sealed record Pending(IReadOnlyList<ParsedEmailEvent> Events, TaskCompletionSource<HashSet<string>> Done);

    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(20_000)
    {
        FullMode = BoundedChannelFullMode.Wait,
    });

    /// <summary>Stores the events; returns the idempotency keys that were inserted (the others were duplicates).
    /// Throws <see cref="EmailEventWriterStoppedException"/> when the writer stops (shutdown) before they were stored.
    /// When <paramref name="ct"/> fires first, the events stay queued and may still be stored: a caller that then
    /// answers non-200 gets Tencent's retry, which is found a duplicate, so nothing is lost either way.</summary>
    public async Task<HashSet<string>> WriteAsync(IReadOnlyList<ParsedEmailEvent> events, CancellationToken ct)
    {
        var pending = new Pending(events, new TaskCompletionSource<HashSet<string>>(TaskCreationOptions.RunContinuationsAsynchronously));
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
                    rows += p.Events.Count;
                }
                if (batch.Count == 0)
                {
                    continue;
                }
                try
                {
                    var inserted = await InsertAsync(batch.SelectMany(p => p.Events).ToList(), stoppingToken);
                    foreach (var p in batch)
                    {
                        p.Done.TrySetResult(inserted);
                    }
                    if (inserted.Count > 0)
                    {
                        signal.Notify();
                    }
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

    private async Task<HashSet<string>> InsertAsync(List<ParsedEmailEvent> events, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("""
            INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, smtp_message_id, email,
                occurred_at, link, reason, bounce_type, user_agent, ip_address, payload, received_at, attempts)
            SELECT k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p::jsonb, $15, 0
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                        $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
                 AS u(k, f, t, rt, m, sm, e, o, l, r, b, ua, ip, p)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key
            """, conn);
        void Add<T>(T[] values, NpgsqlDbType type) => cmd.Parameters.Add(new NpgsqlParameter { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type });
        Add(events.Select(e => e.IdempotencyKey).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.Format).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.EventType).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.RawEventType).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.MessageId).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.SmtpMessageId).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.Email).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.OccurredAt).ToArray(), NpgsqlDbType.TimestampTz);
        Add(events.Select(e => e.Link).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.Reason).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.BounceType).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.UserAgent).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.IpAddress).ToArray(), NpgsqlDbType.Text);
        Add(events.Select(e => e.Payload).ToArray(), NpgsqlDbType.Text);
        cmd.Parameters.Add(new NpgsqlParameter { Value = clock.GetUtcNow(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var inserted = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            inserted.Add(reader.GetString(0));
        }
        return inserted;
    }

    [LoggerMessage(LogLevel.Error, "Storing {Requests} webhook requests failed: {Error}")]
    private static partial void LogInsertFailed(ILogger logger, int requests, string error);
}

/// <summary>The writer stopped (shutdown) before the events were stored: the caller answers 503, Tencent retries.</summary>
public sealed class EmailEventWriterStoppedException() : Exception("The event writer is stopping; the events were not stored.");
