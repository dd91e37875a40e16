using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Extensions;

namespace SendEngine.Features.SendJobs;

/// <summary>What the console watches: a job's live progress (server-sent events) and its statistics over time.</summary>
public static class SendJobProgressApi
{
    public static IEndpointRouteBuilder MapSendJobProgressApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/send-jobs").WithTags("Send jobs").RequireAuthorization(AuthExtensions.SendRead);
        api.MapGet("/{id:guid}/progress", Progress).WithName("watchSendJobProgress")
            .WithSummary("Live progress as text/event-stream: a progress event every second (counts, sent per second over 5 s, remaining, errors, status) until the job is final; a comment every 15 s.")
            .Produces<SendJobProgressEvent>(StatusCodes.Status200OK, "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/{id:guid}/stats", Stats).WithName("getSendJobStats")
            .WithSummary("Time series per minute or hour (UTC): sent, delivered, bounced (hard, soft), complained, opened, clicked, unsubscribed.");
        return app;
    }

    private static async Task<IResult> Progress(Guid id, HttpContext http, ClaimsPrincipal user, SendEngineDbContext db, JobProgressHub hub,
        IOptions<SendJobOptions> options, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider clock)
    {
        var ct = http.RequestAborted;
        var tenantId = user.TenantId();
        if (!await db.SendJobs.AnyAsync(j => j.Id == id && j.TenantId == tenantId, ct))
        {
            return SendJobsApi.JobNotFound();
        }
        var response = http.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        // Reverse proxies (nginx) would otherwise hold the events back.
        response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var heartbeat = options.Value.ProgressHeartbeat;
        try
        {
            await response.StartAsync(ct);
            using var watcher = hub.Watch(id);
            var reader = watcher.Reader;
            var nextHeartbeat = clock.GetUtcNow() + heartbeat;
            while (true)
            {
                var wait = nextHeartbeat - clock.GetUtcNow();
                bool more;
                using (var until = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    until.CancelAfter(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
                    try
                    {
                        more = await reader.WaitToReadAsync(until.Token);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        await response.WriteAsync(": heartbeat\n\n", ct);
                        await response.Body.FlushAsync(ct);
                        nextHeartbeat = clock.GetUtcNow() + heartbeat;
                        continue;
                    }
                }
                if (!more)
                {
                    break;
                }
                while (reader.TryRead(out var e))
                {
                    await response.WriteAsync("event: progress\ndata: " + JsonSerializer.Serialize(e, json.Value.SerializerOptions) + "\n\n", ct);
                }
                await response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The watcher went away.
        }
        return Results.Empty;
    }

    private static async Task<Results<Ok<SendJobStatsResponse>, ValidationProblem, ProblemHttpResult>> Stats(
        Guid id, string? bucket, ClaimsPrincipal user, NpgsqlDataSource dataSource, CancellationToken ct)
    {
        bucket = string.IsNullOrEmpty(bucket) ? "hour" : bucket;
        if (bucket is not ("minute" or "hour"))
        {
            return TypedResults.ValidationProblem(new Validation().Add("bucket", "The bucket must be minute or hour.").Errors);
        }
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        if (await Sql.ScalarAsync<Guid?>(conn, "SELECT id FROM send_jobs WHERE id = $1 AND tenant_id = $2", ct, id, user.TenantId()) is null)
        {
            return SendJobsApi.JobNotFound();
        }
        // Sent from the recipients' sent_at (ix_send_job_recipients_job_id_sent_at), the rest from the job's processed
        // events (ix_email_events_job_id_event_type), bucketed in UTC and joined on the bucket.
        var series = new List<SendJobStatsBucket>();
        await using var cmd = Sql.Command(conn, """
            WITH sent AS (
                SELECT date_trunc($2, sent_at, 'UTC') AS b, count(*) AS n
                FROM send_job_recipients WHERE job_id = $1 AND sent_at IS NOT NULL GROUP BY 1),
            ev AS (
                SELECT date_trunc($2, occurred_at, 'UTC') AS b,
                    count(DISTINCT recipient_id) FILTER (WHERE event_type = 'delivered') AS delivered,
                    count(DISTINCT recipient_id) FILTER (WHERE event_type = 'hard_bounce' OR outcome = 'applied_as_hard_bounce') AS hard,
                    count(*) FILTER (WHERE event_type = 'soft_bounce') AS soft,
                    count(DISTINCT recipient_id) FILTER (WHERE event_type = 'spamreport') AS complained,
                    count(*) FILTER (WHERE event_type = 'open') AS opened,
                    count(*) FILTER (WHERE event_type = 'click') AS clicked,
                    count(DISTINCT recipient_id) FILTER (WHERE event_type = 'unsubscribe') AS unsubscribed
                FROM email_events WHERE job_id = $1 AND processed_at IS NOT NULL GROUP BY 1)
            SELECT COALESCE(s.b, e.b), COALESCE(s.n, 0), COALESCE(e.delivered, 0), COALESCE(e.hard, 0), COALESCE(e.soft, 0),
                COALESCE(e.complained, 0), COALESCE(e.opened, 0), COALESCE(e.clicked, 0), COALESCE(e.unsubscribed, 0)
            FROM sent s FULL JOIN ev e ON e.b = s.b
            ORDER BY 1
            """, id, bucket);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            int I(int i) => (int)r.GetInt64(i);
            series.Add(new SendJobStatsBucket(r.GetFieldValue<DateTimeOffset>(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7), I(8)));
        }
        return TypedResults.Ok(new SendJobStatsResponse(id.ToString(), bucket, series));
    }
}
