using System.Text.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Background;
using Npgsql;

namespace MemberCenter.Features.Subscribers;

/// <summary>
/// Applies staged CSV imports in batches through <see cref="SubscriptionService.SubscribeBatchAsync"/> (the one subscribe
/// statement). Each batch is one transaction that locks its import row (SKIP LOCKED: replicas share imports, never a
/// batch), subscribes the rows, deletes them from the staging table and adds the counts, so a process killed mid-way
/// resumes with the first row not yet applied and no row is applied twice.
/// </summary>
public sealed partial class SubscriberImportProcessor(
    IServiceScopeFactory scopes,
    NpgsqlDataSource dataSource,
    WakeSignal<SubscriberImportProcessor> signal,
    IOptions<ImportOptions> options,
    TimeProvider clock,
    ILogger<SubscriberImportProcessor> logger) : BatchLoop(signal, clock)
{
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => options.Value.BatchSize;

    protected override Task<int> RunBatchAsync(CancellationToken ct) => ApplyBatchAsync(ct);

    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex);

    /// <summary>Applies one batch of the oldest unfinished import; returns the batch size while imports remain, else 0.</summary>
    public async Task<int> ApplyBatchAsync(CancellationToken ct)
    {
        var batchSize = options.Value.BatchSize;
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        ImportJob? job = null;
        await using (var pick = new NpgsqlCommand("""
            SELECT id, tenant_id, list_id, mode, consent_note, ip_address, user_agent FROM subscriber_imports
            WHERE status <> 'completed' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
            """, conn, tx))
        await using (var reader = await pick.ExecuteReaderAsync(ct))
        {
            if (await reader.ReadAsync(ct))
            {
                job = new ImportJob(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6));
            }
        }
        if (job is null)
        {
            return 0;
        }

        var rows = new List<(int Line, SubscribeRow Row)>(batchSize);
        await using (var read = new NpgsqlCommand(
            "SELECT line, email, email_key, preferences::text FROM subscriber_import_rows WHERE import_id = $1 ORDER BY line LIMIT $2", conn, tx))
        {
            read.Parameters.Add(new NpgsqlParameter { Value = job.Id });
            read.Parameters.Add(new NpgsqlParameter { Value = batchSize });
            await using var reader = await read.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var line = reader.GetInt32(0);
                var details = JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["import_id"] = job.Id,
                    ["line"] = line,
                    ["confirmed"] = job.Confirmed ? true : null,
                    ["note"] = job.ConsentNote,
                }.Where(kv => kv.Value is not null).ToDictionary());
                rows.Add((line, new SubscribeRow(new EmailAddress(reader.GetString(1), reader.GetString(2)), reader.IsDBNull(3) ? null : reader.GetString(3), details)));
            }
        }

        IReadOnlyList<SubscribeResult?> results = [];
        if (rows.Count > 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            var subscriptions = scope.ServiceProvider.GetRequiredService<SubscriptionService>();
            results = await subscriptions.SubscribeBatchAsync(conn, tx, job.TenantId, job.ListId, rows.Select(r => r.Row).ToList(), job.Confirmed,
                new RequestOrigin(ConsentSources.Import, job.IpAddress, job.UserAgent), ct);
        }
        var created = results.Count(r => r?.Outcome == SubscribeOutcome.Created);
        var updated = results.Count(r => r?.Outcome == SubscribeOutcome.Updated);
        var skipped = results.Count - created - updated;

        await using (var done = new NpgsqlCommand("""
            WITH applied AS (
                DELETE FROM subscriber_import_rows WHERE import_id = $1 AND line <= $2
            )
            UPDATE subscriber_imports SET processed = processed + $3, created = created + $4, updated = updated + $5, skipped = skipped + $6,
                status = CASE WHEN $7 THEN 'completed' ELSE 'processing' END,
                completed_at = CASE WHEN $7 THEN $8 END, updated_at = $8
            WHERE id = $1
            """, conn, tx))
        {
            done.Parameters.Add(new NpgsqlParameter { Value = job.Id });
            done.Parameters.Add(new NpgsqlParameter { Value = rows.Count == 0 ? 0 : rows[^1].Line });
            done.Parameters.Add(new NpgsqlParameter { Value = rows.Count });
            done.Parameters.Add(new NpgsqlParameter { Value = created });
            done.Parameters.Add(new NpgsqlParameter { Value = updated });
            done.Parameters.Add(new NpgsqlParameter { Value = skipped });
            // A short batch took the last rows (they are read in line order and only ever deleted by this statement).
            done.Parameters.Add(new NpgsqlParameter { Value = rows.Count < batchSize });
            done.Parameters.Add(new NpgsqlParameter { Value = Clock.GetUtcNow() });
            await done.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        if (rows.Count > 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            scope.ServiceProvider.GetRequiredService<SubscriptionService>().NotifyAfterCommit(results);
        }
        if (rows.Count < batchSize)
        {
            LogImportCompleted(logger, job.Id);
        }
        // Another import may be waiting: look again at once until none is left.
        return batchSize;
    }

    private sealed record ImportJob(Guid Id, Guid TenantId, Guid ListId, string Mode, string? ConsentNote, string? IpAddress, string? UserAgent)
    {
        public bool Confirmed => Mode == SubscriberAddModes.Confirmed;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "A subscriber import batch failed; it is retried")]
    private static partial void LogBatchFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Information, Message = "Subscriber import {ImportId} completed")]
    private static partial void LogImportCompleted(ILogger logger, Guid importId);
}
