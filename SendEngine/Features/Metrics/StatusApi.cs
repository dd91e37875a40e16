using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts;
using Npgsql;
using SendEngine.Data;
using SendEngine.Extensions;

namespace SendEngine.Features.Metrics;

/// <summary>
/// GET /admin/status for platform operators (the console's status page): Hangfire's queues, the backlogs of the
/// event processor, the webhook outbox and the reports to Member Center, and this process's last hour of delivery.
/// Every figure is one indexed query or an in-memory read, so the page can poll it.
/// </summary>
public static class StatusApi
{
    public static IEndpointRouteBuilder MapStatusApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/admin/status", Status).WithTags("Admin").RequireAuthorization(AuthExtensions.Admin).WithName("getSendEngineStatus")
            .WithSummary("Queue depths (Hangfire), email event backlog, pending webhook messages and Member Center reports, and the last hour's delivery and error rates (this process).");
        return app;
    }

    private static async Task<Ok<SendEngineStatusResponse>> Status(JobStorage hangfire, NpgsqlDataSource db, RecentDeliveries recent, TimeProvider clock, CancellationToken ct)
    {
        var stats = hangfire.GetMonitoringApi().GetStatistics();
        var queues = hangfire.GetMonitoringApi().Queues().ToDictionary(q => q.Name, q => q.Length);
        await using var conn = await db.OpenConnectionAsync(ct);
        // Each subquery is answered by a partial index: ix_email_events_unprocessed, ix_webhook_messages_due,
        // ix_member_center_reports_due and the jobs' status index.
        await using var cmd = Sql.Command(conn, $"""
            SELECT (SELECT count(*) FROM email_events WHERE processed_at IS NULL),
                   (SELECT min(received_at) FROM email_events WHERE processed_at IS NULL),
                   (SELECT count(*) FROM webhook_messages WHERE status = 'pending'),
                   (SELECT count(*) FROM member_center_reports WHERE completed_at IS NULL),
                   (SELECT min(created_at) FROM member_center_reports WHERE completed_at IS NULL),
                   (SELECT count(*) FROM send_jobs WHERE status = '{SendJobStatuses.Sending}'),
                   (SELECT count(*) FROM send_jobs WHERE status = '{SendJobStatuses.Paused}')
            """);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        DateTimeOffset? At(int i) => r.IsDBNull(i) ? null : r.GetFieldValue<DateTimeOffset>(i);
        var (sent, failed, unknown) = recent.LastHour();
        var attempts = sent + failed + unknown;
        return TypedResults.Ok(new SendEngineStatusResponse(
            clock.GetUtcNow(),
            new HangfireQueueStatus(stats.Enqueued, stats.Scheduled, stats.Processing, stats.Failed, queues),
            r.GetInt64(0), At(1), sent, failed, unknown,
            Math.Round(sent / 60.0, 2),
            attempts == 0 ? 0 : Math.Round((double)(failed + unknown) / attempts, 4),
            r.GetInt64(2), r.GetInt64(3), At(4), (int)r.GetInt64(5), (int)r.GetInt64(6)));
    }
}
