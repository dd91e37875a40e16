using System.Text.Json;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Npgsql;
using NpgsqlTypes;
using SendEngine.Features.MemberCenter;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// Copies a list's confirmed subscribers into send_job_recipients, one Member Center page per transaction:
/// the page is written with binary COPY and the cursor advanced in the same transaction, under a lock on the
/// job row, so a crash or a second runner resumes after the last committed page and never copies a row twice.
/// </summary>
public sealed partial class RecipientSnapshot(NpgsqlDataSource db, MemberCenterClient memberCenter, TimeProvider clock, ILogger<RecipientSnapshot> logger)
{
    /// <summary>Returns false when Member Center does not know the list (the job cannot run).</summary>
    public async Task<bool> TakeAsync(Guid jobId, Guid tenantId, Guid listId, CancellationToken ct)
    {
        var total = 0;
        while (true)
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            await using var tx = await conn.BeginTransactionAsync(ct);
            Guid? cursor;
            await using (var cmd = new NpgsqlCommand("SELECT snapshot_cursor, snapshot_completed_at IS NOT NULL FROM send_jobs WHERE id = $1 FOR UPDATE", conn, tx))
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = jobId });
                await using var reader = await cmd.ExecuteReaderAsync(ct);
                if (!await reader.ReadAsync(ct) || reader.GetBoolean(1))
                {
                    return true;
                }
                cursor = reader.IsDBNull(0) ? null : reader.GetGuid(0);
            }

            RecipientPage page;
            try
            {
                page = await memberCenter.GetRecipientsAsync(tenantId, listId, cursor, ct);
            }
            catch (MemberCenterException ex) when (ex.Status == System.Net.HttpStatusCode.NotFound)
            {
                return false;
            }

            var now = clock.GetUtcNow();
            if (page.Items.Count > 0)
            {
                await using var copy = await conn.BeginBinaryImportAsync(
                    "COPY send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, updated_at) FROM STDIN (FORMAT BINARY)", ct);
                foreach (var r in page.Items)
                {
                    await copy.StartRowAsync(ct);
                    await copy.WriteAsync(jobId, NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(Guid.Parse(r.SubscriberId), NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(r.Email, NpgsqlDbType.Varchar, ct);
                    await copy.WriteAsync(JsonSerializer.Serialize(r.Preferences), NpgsqlDbType.Jsonb, ct);
                    await copy.WriteAsync(r.UnsubscribeUrl, NpgsqlDbType.Text, ct);
                    await copy.WriteAsync(RecipientStatuses.Pending, NpgsqlDbType.Varchar, ct);
                    await copy.WriteAsync(0, NpgsqlDbType.Integer, ct);
                    await copy.WriteAsync(now, NpgsqlDbType.TimestampTz, ct);
                }
                await copy.CompleteAsync(ct);
            }
            total += page.Items.Count;

            var done = page.NextCursor is null;
            await using (var update = new NpgsqlCommand(done
                ? "UPDATE send_jobs SET snapshot_completed_at = $2, started_at = COALESCE(started_at, $2), status = CASE WHEN status = 'queued' THEN $3 ELSE status END WHERE id = $1"
                : "UPDATE send_jobs SET snapshot_cursor = $4 WHERE id = $1", conn, tx))
            {
                update.Parameters.Add(new NpgsqlParameter { Value = jobId, NpgsqlDbType = NpgsqlDbType.Uuid });
                update.Parameters.Add(new NpgsqlParameter { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                update.Parameters.Add(new NpgsqlParameter { Value = SendJobStatuses.Sending, NpgsqlDbType = NpgsqlDbType.Varchar });
                update.Parameters.Add(new NpgsqlParameter { Value = done ? DBNull.Value : Guid.Parse(page.NextCursor!), NpgsqlDbType = NpgsqlDbType.Uuid });
                await update.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            if (done)
            {
                LogSnapshotDone(logger, jobId, total);
                return true;
            }
        }
    }

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: snapshot complete, {Count} recipients copied by this runner")]
    private static partial void LogSnapshotDone(ILogger logger, Guid jobId, int count);
}
