using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Background;

namespace MemberCenter.Features.Privacy;

/// <summary>
/// Delivers <see cref="SendEngineRequest"/> rows to Send Engine, oldest first. Rows are claimed with SKIP LOCKED and a
/// lease, so replicas share the queue and a crash only delays a row; a row waits while an older open row of the same
/// address exists, so an erase and a later lift arrive in order. Unreachable, 5xx, 401/403: retried after 1 s, doubling
/// up to SendEngine:RetryMaxDelay, with no limit on attempts (an erasure must land). A 4xx that says the request itself
/// is wrong is recorded as failed, with the address removed.
/// </summary>
public sealed partial class SendEngineRequestDispatcher(
    IServiceScopeFactory scopes,
    WakeSignal<SendEngineRequestDispatcher> signal,
    IOptions<SendEngineOptions> options,
    TimeProvider clock,
    ILogger<SendEngineRequestDispatcher> logger) : BatchLoop(signal, clock)
{
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(2);

    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => 20;

    protected override Task<int> RunBatchAsync(CancellationToken ct) => DispatchBatchAsync(ct);

    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex);

    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        var client = scope.ServiceProvider.GetRequiredService<SendEngineClient>();
        var now = Clock.GetUtcNow();
        var leaseUntil = now + Lease;
        var claimed = await db.SendEngineRequests.FromSql($"""
            UPDATE send_engine_requests SET next_attempt_at = {leaseUntil}, attempts = attempts + 1
            WHERE id IN (
                SELECT r.id FROM send_engine_requests r
                WHERE r.completed_at IS NULL AND r.next_attempt_at <= {now}
                  AND NOT EXISTS (SELECT 1 FROM send_engine_requests e
                                  WHERE e.tenant_id = r.tenant_id AND e.address_hash = r.address_hash
                                    AND e.completed_at IS NULL AND e.id < r.id)
                ORDER BY r.id
                LIMIT {BatchSize}
                FOR UPDATE SKIP LOCKED)
            RETURNING *
            """).AsNoTracking().ToListAsync(ct);
        foreach (var request in claimed.OrderBy(r => r.Id))
        {
            string? error = null;
            var failed = false;
            try
            {
                if (request.Email is null)
                {
                    throw new InvalidOperationException("The request has no address.");
                }
                if (request.Kind == SendEngineRequestKinds.Erase)
                {
                    await client.EraseAsync(request.TenantId, request.Email, ct);
                }
                else
                {
                    await client.LiftErasureAsync(request.TenantId, request.Email, ct);
                }
            }
            catch (SendEngineException ex)
            {
                error = ex.Message;
                failed = !ex.IsTransient;
            }
            catch (InvalidOperationException ex)
            {
                error = ex.Message;
                failed = true;
            }
            var at = Clock.GetUtcNow();
            error = error is { Length: > 1000 } ? error[..1000] : error;
            if (error is null || failed)
            {
                await db.SendEngineRequests.Where(r => r.Id == request.Id).ExecuteUpdateAsync(u => u
                    .SetProperty(r => r.CompletedAt, at)
                    .SetProperty(r => r.Outcome, failed ? "failed" : "done")
                    .SetProperty(r => r.Email, (string?)null)
                    .SetProperty(r => r.LastError, error), CancellationToken.None);
                if (failed)
                {
                    LogRefused(logger, request.Id, request.Kind, error!);
                }
                continue;
            }
            var delay = TimeSpan.FromSeconds(Math.Min(Math.Pow(2, Math.Min(request.Attempts - 1, 30)), options.Value.RetryMaxDelay.TotalSeconds));
            LogRetry(logger, request.Id, request.Kind, request.Attempts, delay, error);
            await db.SendEngineRequests.Where(r => r.Id == request.Id).ExecuteUpdateAsync(u => u
                .SetProperty(r => r.NextAttemptAt, at + delay)
                .SetProperty(r => r.LastError, error), CancellationToken.None);
        }
        return claimed.Count;
    }

    [LoggerMessage(LogLevel.Warning, "Send Engine request {RequestId} ({Kind}) failed on attempt {Attempt}; retrying in {Delay}: {Error}")]
    private static partial void LogRetry(ILogger logger, long requestId, string kind, int attempt, TimeSpan delay, string error);

    [LoggerMessage(LogLevel.Error, "Send Engine refused request {RequestId} ({Kind}); not retried: {Error}")]
    private static partial void LogRefused(ILogger logger, long requestId, string kind, string error);

    [LoggerMessage(LogLevel.Error, "Send Engine request batch failed")]
    private static partial void LogBatchFailed(ILogger logger, Exception ex);
}
