using Hangfire;
using Npgsql;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// A recurring Hangfire job (every minute): runs jobs that should be running but have no runner — a crash between
/// the insert and the Hangfire schedule, or a runner whose Hangfire job was lost. Extra runners are harmless
/// (recipients are claimed with SKIP LOCKED), so this errs on the side of starting one. It also settles the rows of
/// recently cancelled jobs whose runner died: claimed or pending rows are cancelled, and a row left 'sending' is
/// recorded failed with the unknown outcome, as expired-lease recovery does for running jobs.
/// </summary>
public sealed partial class SendJobWatchdog(NpgsqlDataSource db, IBackgroundJobClient jobs, TimeProvider clock, ILogger<SendJobWatchdog> logger)
{
    public const string RecurringJobId = "send-job-watchdog";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(60)]
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await Sql.ExecuteAsync(db, """
            UPDATE send_job_recipients r SET status = CASE WHEN r.status = 'sending' THEN 'failed' ELSE 'cancelled' END,
                detail = CASE WHEN r.status = 'sending' THEN $2 ELSE r.detail END,
                claimed_by = NULL, lease_until = NULL, updated_at = $1
            FROM send_jobs j
            WHERE j.id = r.job_id AND j.status = 'cancelled' AND j.cancelled_at > $1 - interval '1 day'
              AND (r.status = 'pending' OR (r.status IN ('claimed', 'sending') AND r.lease_until < $1))
            """, cancellationToken, now, SendJobRunner.UnknownOutcome);
        var stalled = new List<Guid>();
        await using (var conn = await db.OpenConnectionAsync(cancellationToken))
        await using (var cmd = Sql.Command(conn, """
            SELECT j.id FROM send_jobs j
            WHERE (j.status = 'scheduled' AND j.scheduled_at < $1 - interval '2 minutes')
               OR (j.status IN ('queued', 'sending') AND COALESCE(j.started_at, j.scheduled_at) < $1 - interval '2 minutes'
                   AND NOT EXISTS (SELECT 1 FROM send_job_recipients r
                                   WHERE r.job_id = j.id AND r.status IN ('claimed', 'sending') AND r.lease_until > $1)
                   AND (j.snapshot_completed_at IS NULL
                        OR EXISTS (SELECT 1 FROM send_job_recipients r
                                   WHERE r.job_id = j.id AND r.status = 'pending' AND (r.next_attempt_at IS NULL OR r.next_attempt_at < $1 - interval '1 minute'))))
            LIMIT 100
            """, now))
        {
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                stalled.Add(reader.GetGuid(0));
            }
        }
        foreach (var id in stalled)
        {
            LogRestarting(logger, id);
            jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        }
    }

    [LoggerMessage(LogLevel.Warning, "Send job {JobId} has no active runner; starting one")]
    private static partial void LogRestarting(ILogger logger, Guid jobId);
}
