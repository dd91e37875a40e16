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
        // Sent from the recipients' sent_at (through the job's rows: sent_at has no index, so that a result is a HOT update), the rest from
        // the job's processed events (ix_email_events_job_id_event_type), in UTC buckets (date_bin: no time zone work
        // per row, unlike date_trunc's). Two statements of one batch merged here: joined in SQL, the planner's guess
        // for the join was large enough to JIT-compile the query, which cost more than the query itself.
        var width = bucket == "minute" ? TimeSpan.FromMinutes(1) : TimeSpan.FromHours(1);
        var buckets = new SortedDictionary<DateTimeOffset, SendJobStatsBucket>();
        SendJobStatsBucket At(DateTimeOffset start) =>
            buckets.TryGetValue(start, out var b) ? b : buckets[start] = new SendJobStatsBucket(start, 0, 0, 0, 0, 0, 0, 0, 0);
        await using var batch = new NpgsqlBatch(conn)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("""
                    SELECT date_bin($1, sent_at, timestamptz '2000-01-01 00:00:00+00'), count(*)
                    FROM send_job_recipients WHERE job_id = $2 AND sent_at IS NOT NULL GROUP BY 1
                    """) { Parameters = { new() { Value = width }, new() { Value = id } } },
                new NpgsqlBatchCommand("""
                    SELECT date_bin($1, occurred_at, timestamptz '2000-01-01 00:00:00+00'),
                        count(DISTINCT recipient_id) FILTER (WHERE event_type = 'delivered'),
                        count(DISTINCT recipient_id) FILTER (WHERE event_type = 'hard_bounce' OR outcome = 'applied_as_hard_bounce'),
                        count(*) FILTER (WHERE event_type = 'soft_bounce'),
                        count(DISTINCT recipient_id) FILTER (WHERE event_type = 'spamreport'),
                        count(*) FILTER (WHERE event_type = 'open'),
                        count(*) FILTER (WHERE event_type = 'click'),
                        count(DISTINCT recipient_id) FILTER (WHERE event_type = 'unsubscribe')
                    FROM email_events WHERE job_id = $2 AND processed_at IS NOT NULL GROUP BY 1
                    """) { Parameters = { new() { Value = width }, new() { Value = id } } },
            },
        };
        await using var r = await batch.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var start = r.GetFieldValue<DateTimeOffset>(0);
            buckets[start] = At(start) with { Sent = (int)r.GetInt64(1) };
        }
        await r.NextResultAsync(ct);
        while (await r.ReadAsync(ct))
        {
            int I(int i) => (int)r.GetInt64(i);
            var start = r.GetFieldValue<DateTimeOffset>(0);
            buckets[start] = At(start) with
            {
                Delivered = I(1), BouncedHard = I(2), BouncedSoft = I(3), Complained = I(4), Opened = I(5), Clicked = I(6), Unsubscribed = I(7),
            };
        }
        var series = buckets.Values.Where(b => b != new SendJobStatsBucket(b.Start, 0, 0, 0, 0, 0, 0, 0, 0)).ToList();
        return TypedResults.Ok(new SendJobStatsResponse(id.ToString(), bucket, series));
    }
}
