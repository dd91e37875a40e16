using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Npgsql;
using NpgsqlTypes;
using SendEngine.Composition;
using SendEngine.Features.MemberCenter;

namespace SendEngine.Delivery;

/// <summary>
/// Copies a list's confirmed subscribers into send_job_recipients, one Member Center page per transaction:
/// the page is written with binary COPY and the cursor advanced in the same transaction, under a lock on the
/// job row and only if the cursor is still the one the page was read for, so a crash or a second runner resumes
/// after the last committed page and never copies a row twice.
/// The first committed page moves the job to 'sending' (started_at), so delivery runs while later pages are still
/// being read; snapshot_completed_at marks the end, before which no runner may call the job complete.
/// </summary>
public sealed partial class RecipientSnapshot(NpgsqlDataSource db, MemberCenterClient memberCenter, TimeProvider clock, ILogger<RecipientSnapshot> logger)
{
    /// <summary>Recipients in the first page, which delivery starts with; later pages are MemberCenter:PageSize.</summary>
    public const int FirstPageSize = 100;

    public enum Outcome
    {
        /// <summary>Every page is copied (now or by an earlier runner).</summary>
        Complete,
        /// <summary>Member Center does not know the list (deleted, or not this tenant's): the job cannot run.</summary>
        ListNotFound,
        /// <summary>The job was cancelled or failed meanwhile.</summary>
        Stopped,
    }

    /// <summary>Copies the remaining pages, telling <paramref name="progress"/> of each committed page and of the end.</summary>
    /// <param name="messageIdDomain">The domain of the Message-ID each row gets here (<see cref="MessageComposer.MessageIdDomainOf"/>).</param>
    public async Task<Outcome> TakeAsync(Guid jobId, Guid tenantId, Guid listId, string messageIdDomain, SnapshotProgress progress, CancellationToken ct)
    {
        try
        {
            return await CopyPagesAsync(jobId, tenantId, listId, messageIdDomain, progress, ct);
        }
        finally
        {
            progress.End();
        }
    }

    private async Task<Outcome> CopyPagesAsync(Guid jobId, Guid tenantId, Guid listId, string messageIdDomain, SnapshotProgress progress, CancellationToken ct)
    {
        var total = 0;
        while (true)
        {
            // The page is fetched outside any transaction (a lock on the job row held during the HTTP call would block
            // every other writer of the job, e.g. a pause, for as long as Member Center takes), then written only if
            // the cursor is still the one it was fetched for: another runner that copied it first wins.
            var (state, cursor) = await ReadCursorAsync(db, jobId, ct);
            if (state is not null)
            {
                return state.Value;
            }
            SnapshotPage page;
            try
            {
                // A short first page: delivery starts as soon as it is in, so it need not wait for a full one.
                page = await memberCenter.GetRecipientsAsync(tenantId, listId, cursor, ct, cursor is null ? FirstPageSize : null);
                progress.Timeline?.Mark("first page read");
            }
            catch (MemberCenterException ex) when (ex.Status == System.Net.HttpStatusCode.NotFound)
            {
                return Outcome.ListNotFound;
            }

            await using var conn = await db.OpenConnectionAsync(ct);
            await using var tx = await conn.BeginTransactionAsync(ct);
            var (lockedState, lockedCursor) = await ReadCursorAsync(conn, tx, jobId, ct);
            if (lockedState is not null || lockedCursor != cursor)
            {
                continue;
            }

            var now = clock.GetUtcNow();
            if (page.Items.Count > 0)
            {
                // Each row's Message-ID is chosen here, not by its result: an indexed column the result does not change,
                // so the result can be a HOT update (docs/send-engine.md "Execution"). The APIs show it once attempted.
                await using var copy = await conn.BeginBinaryImportAsync(
                    "COPY send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, message_id) FROM STDIN (FORMAT BINARY)", ct);
                foreach (var r in page.Items)
                {
                    await copy.StartRowAsync(ct);
                    await copy.WriteAsync(jobId, NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(Guid.Parse(r.SubscriberId), NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(r.Email, NpgsqlDbType.Varchar, ct);
                    await copy.WriteAsync(r.Preferences, NpgsqlDbType.Jsonb, ct);
                    await copy.WriteAsync(RecipientStatuses.Pending, NpgsqlDbType.Varchar, ct);
                    await copy.WriteAsync(0, NpgsqlDbType.Integer, ct);
                    await copy.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
                    // Time-ordered (UUIDv7: 48 bits of milliseconds, 74 random), so the message_id index grows at its right
                    // edge instead of taking each page's ids at random places.
                    await copy.WriteAsync(Guid.CreateVersion7(now).ToString("N") + "@" + messageIdDomain, NpgsqlDbType.Varchar, ct);
                }
                await copy.CompleteAsync(ct);
            }
            total += page.Items.Count;

            var done = page.NextCursor is null;
            await using (var update = new NpgsqlCommand(RecipientStore.AdvanceSnapshotSql, conn, tx))
            {
                update.Parameters.Add(new NpgsqlParameter { Value = jobId, NpgsqlDbType = NpgsqlDbType.Uuid });
                update.Parameters.Add(new NpgsqlParameter { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                update.Parameters.Add(new NpgsqlParameter { Value = done ? DBNull.Value : Guid.Parse(page.NextCursor!), NpgsqlDbType = NpgsqlDbType.Uuid });
                update.Parameters.Add(new NpgsqlParameter { Value = done, NpgsqlDbType = NpgsqlDbType.Boolean });
                update.Parameters.Add(new NpgsqlParameter { Value = (object?)page.ChangesCursor ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Varchar });
                await update.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            progress.Timeline?.Mark("first page committed");
            progress.PageCommitted();
            if (cursor is null)
            {
                // On two cores the rest of the snapshot (Member Center's pages, the COPY) competes with delivery's start:
                // let the first message leave first (at most a couple of seconds, should delivery not start).
                await progress.FirstMessageAsync(TimeSpan.FromSeconds(2), ct);
            }
            if (done)
            {
                LogSnapshotDone(logger, jobId, total);
                return Outcome.Complete;
            }
        }
    }

    /// <summary>Where the snapshot stands: an outcome when there is nothing to copy, else the cursor to copy after.</summary>
    private static async Task<(Outcome? State, Guid? Cursor)> ReadCursorAsync(NpgsqlDataSource db, Guid jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await ReadCursorAsync(conn, null, jobId, ct);
    }

    /// <param name="tx">When given, the job row is locked (FOR UPDATE) until it ends.</param>
    private static async Task<(Outcome? State, Guid? Cursor)> ReadCursorAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, Guid jobId, CancellationToken ct)
    {
        var sql = "SELECT snapshot_cursor, snapshot_completed_at IS NOT NULL, status FROM send_jobs WHERE id = $1" + (tx is null ? "" : " FOR UPDATE");
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = jobId });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
        {
            return (Outcome.Stopped, null);
        }
        if (reader.GetBoolean(1))
        {
            return (Outcome.Complete, null);
        }
        if (!RecipientStore.SnapshotMayRun(reader.GetString(2)))
        {
            return (Outcome.Stopped, null);
        }
        return (null, reader.IsDBNull(0) ? null : reader.GetGuid(0));
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: snapshot complete, {Count} recipients copied by this runner")]
    private static partial void LogSnapshotDone(ILogger logger, Guid jobId, int count);
}

/// <summary>Signals from the snapshot taken in this process to its delivery: first page in, each page, the end.</summary>
public sealed class SnapshotProgress(TimeProvider clock)
{
    /// <summary>Where the run's start is timed (the first snapshot page and the first message), if it is.</summary>
    internal StartTimeline? Timeline { get; init; }

    private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _firstMessage = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Pulse _page = new();
    private volatile bool _ended;

    public Task FirstPage => _first.Task;

    public void PageCommitted()
    {
        _first.TrySetResult();
        _page.Fire();
    }

    /// <summary>Delivery handed its first message to the transport.</summary>
    public void FirstMessageAttempted() => _firstMessage.TrySetResult();

    /// <summary>Waits until delivery attempted its first message, at most <paramref name="max"/>.</summary>
    public async Task FirstMessageAsync(TimeSpan max, CancellationToken ct)
    {
        await Task.WhenAny(_firstMessage.Task, Task.Delay(max, clock, ct));
        ct.ThrowIfCancellationRequested();
    }

    public void End()
    {
        _ended = true;
        _page.Fire();
    }

    /// <summary>Waits for the next committed page, at most <paramref name="max"/> (just the delay once the snapshot has ended).</summary>
    public async Task NextPageAsync(TimeSpan max, CancellationToken ct)
    {
        if (_ended)
        {
            await Task.Delay(max, clock, ct);
            return;
        }
        await Task.WhenAny(_page.Next, Task.Delay(max, clock, ct));
        ct.ThrowIfCancellationRequested();
    }
}
