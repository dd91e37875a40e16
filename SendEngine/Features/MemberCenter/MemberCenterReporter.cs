using SendEngine.Data;
using System.Net;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Npgsql;
using SendEngine.Features.EmailEvents;
using Newsletter.ServiceDefaults.Background;
using SendEngine.Features.Metrics;
using SendEngine.Features.SendJobs;

namespace SendEngine.Features.MemberCenter;

/// <summary>
/// Delivers queued <see cref="MemberCenterReport"/>s. A batch is claimed with a lease (next_attempt_at moved ahead,
/// committed) so several processes share the queue and none holds locks across HTTP calls; a process that dies
/// mid-batch leaves its rows to be claimed again when the lease ends (Member Center's report is idempotent).
/// Unreachable, 5xx, 401/403 (credentials), 408, 429: retried with backoff (doubling, at most an hour) for as long as it
/// takes: an unsubscribe or complaint must never be dropped, and until Member Center acknowledges it the claimer skips
/// the address itself (<see cref="PendingReports"/>). Any other 4xx (Member Center refuses the report itself): failed at
/// once, and still skipped. Counted in sendengine_member_center_reports_total{kind, outcome = sent, retried, failed}; the
/// queue's length and the age of its oldest report are sampled into sendengine_member_center_reports_pending and
/// sendengine_member_center_reports_pending_age_seconds.
/// </summary>
public sealed partial class MemberCenterReporter(
    NpgsqlDataSource db,
    MemberCenterClient memberCenter,
    WakeSignal<MemberCenterReporter> signal,
    SendEngineMetrics metrics,
    IOptions<EmailEventOptions> options,
    TimeProvider clock,
    ILogger<MemberCenterReporter> logger) : BatchLoop(signal, clock)
{
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(2);

    private DateTimeOffset _lastPending = DateTimeOffset.MinValue;

    protected override bool Enabled => options.Value.ProcessorEnabled;
    protected override TimeSpan PollInterval => options.Value.PollInterval;
    protected override int BatchSize => 50;

    protected override async Task<int> RunBatchAsync(CancellationToken ct)
    {
        var claimed = await SendBatchAsync(ct);
        // Sampled like the events backlog; the partial index ix_member_center_reports_due keeps it cheap.
        if (Clock.GetUtcNow() - _lastPending > TimeSpan.FromSeconds(5))
        {
            await SamplePendingAsync(ct);
            _lastPending = Clock.GetUtcNow();
        }
        return claimed;
    }

    // The database went away; the claimed rows come back when their lease ends.
    protected override void OnBatchFailed(Exception ex) => LogBatchFailed(logger, ex.Message);

    private async Task SamplePendingAsync(CancellationToken ct)
    {
        await using var cmd = db.CreateCommand("SELECT count(*), min(created_at) FROM member_center_reports WHERE completed_at IS NULL");
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var oldest = reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1);
        metrics.PendingMemberCenterReports(reader.GetInt64(0), oldest is { } o ? Clock.GetUtcNow() - o : TimeSpan.Zero);
    }

    /// <summary>Claims and sends one batch; returns how many rows it claimed.</summary>
    public async Task<int> SendBatchAsync(CancellationToken ct)
    {
        var now = Clock.GetUtcNow();
        var batch = new List<(long Id, SuppressionReport Report, int Attempts)>();
        // The detail comes from the event that caused the report (none for an SMTP refusal): the ESP's reason, or the
        // spec format's unsubscribeType.
        await using (var cmd = db.CreateCommand("""
            WITH claimed AS (
                UPDATE member_center_reports SET next_attempt_at = $1, attempts = attempts + 1
                WHERE id IN (SELECT id FROM member_center_reports
                             WHERE completed_at IS NULL AND next_attempt_at <= $2
                             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                RETURNING id, tenant_id, email, reason, list_id, occurred_at, attempts, email_event_id)
            SELECT c.id, c.tenant_id, c.email, c.reason, c.list_id, c.occurred_at, c.attempts,
                left(concat_ws('; ', e.reason, 'unsubscribe type ' || (e.payload ->> 'unsubscribeType')), 500)
            FROM claimed c LEFT JOIN email_events e ON e.id = c.email_event_id
            """))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = now + Lease });
            cmd.Parameters.Add(new NpgsqlParameter { Value = now });
            cmd.Parameters.Add(new NpgsqlParameter { Value = BatchSize });
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var report = new SuppressionReport(reader.GetGuid(1).ToString(), reader.GetString(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetGuid(4).ToString(), reader.GetFieldValue<DateTimeOffset>(5),
                    reader.IsDBNull(7) || reader.GetString(7).Length == 0 ? null : reader.GetString(7));
                batch.Add((reader.GetInt64(0), report, reader.GetInt32(6)));
            }
        }
        foreach (var (id, report, attempts) in batch.OrderBy(b => b.Id))
        {
            try
            {
                await memberCenter.ReportSuppressionAsync(report, ct);
                await Sql.ExecuteAsync(db, "UPDATE member_center_reports SET completed_at = $2, outcome = 'sent', last_error = NULL WHERE id = $1",
                    CancellationToken.None, id, Clock.GetUtcNow());
                metrics.MemberCenterReport(report.Reason ?? "unknown", "sent");
            }
            catch (Exception ex) when (MemberCenterClient.IsOutage(ex, ct))
            {
                // Member Center refused this report itself (400, 422…): retrying changes nothing. 401/403 mean our own
                // credentials are wrong, a configuration problem to outlast, like 408/429 and 5xx.
                var refused = ex is MemberCenterException { Status: { } status } && (int)status is >= 400 and < 500
                              && status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                                  or HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests);
                // Never given up for lack of attempts: the backoff is capped at an hour and the address stays skipped
                // meanwhile, so waiting out a long outage costs one request an hour.
                var giveUp = refused;
                var delay = options.Value.RetryDelay(attempts);
                LogReportFailed(logger, id, report.Reason ?? "", attempts, giveUp, ex.Message);
                var at = Clock.GetUtcNow();
                await Sql.ExecuteAsync(db, """
                    UPDATE member_center_reports SET last_error = left($2, 2000), next_attempt_at = $3,
                        completed_at = CASE WHEN $4 THEN $5 END, outcome = CASE WHEN $4 THEN 'failed' END
                    WHERE id = $1
                    """, CancellationToken.None, id, ex.Message, at + delay, giveUp, at);
                metrics.MemberCenterReport(report.Reason ?? "unknown", giveUp ? "failed" : "retried");
            }
        }
        return batch.Count;
    }

    [LoggerMessage(LogLevel.Warning, "Member Center report batch failed: {Error}")]
    private static partial void LogBatchFailed(ILogger logger, string error);

    [LoggerMessage(LogLevel.Warning, "Member Center report {Id} ({Reason}) failed, attempt {Attempts}, given up: {GivenUp}: {Error}")]
    private static partial void LogReportFailed(ILogger logger, long id, string reason, int attempts, bool givenUp, string error);
}
