using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;
using SendEngine.Features.EmailEvents;
using SendEngine.Features.Webhooks;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The webhook gateway (issue 15, seed 004): inbound ESP callbacks as received, per tenant, with a live view, the ingestion
/// switch, a test console, and the tenant's outbound webhook attempts with replay. Tenant routes under
/// /api/webhook-gateway (reading: newsletter:webhooks or newsletter:logs.read; changing: newsletter:webhooks, like the
/// webhook endpoints), the same for operators under /admin/tenants/{tenant_id}/webhook-gateway, and the platform log
/// (requests no tenant could be found for) under /admin/webhook-gateway. Another tenant's entry or attempt is a 404.
/// </summary>
public static class WebhookGatewayApi
{
    public const string ReadPolicy = "webhook-gateway.read";
    public const int MaxPageSize = 200;

    public static IEndpointRouteBuilder MapWebhookGatewayApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/webhook-gateway").WithTags("Webhook gateway");
        Map(tenant, "", user => user.TenantId(), ReadPolicy, WebhookEndpointsApi.TenantPolicy);
        var admin = app.MapGroup("/admin/tenants/{tenant_id:guid}/webhook-gateway").WithTags("Webhook gateway (admin)");
        Map(admin, "admin", null, Extensions.AuthExtensions.Admin, Extensions.AuthExtensions.Admin);

        var platform = app.MapGroup("/admin/webhook-gateway").WithTags("Webhook gateway (admin)").RequireAuthorization(Extensions.AuthExtensions.Admin);
        platform.MapGet("/events", (Guid? before, string? verification, int? limit, GatewayStore store, CancellationToken ct) =>
                ListAsync(null, before, verification, limit, store, ct))
            .WithName("listPlatformWebhookGatewayEvents")
            .WithSummary("The platform log, newest first: requests refused before any tenant was known, and events that matched no message.")
            .Produces<GatewayEntryPage>().ProducesValidationProblem();
        platform.MapGet("/events/stream", (HttpContext http, GatewayFeed feed, TimeProvider clock) =>
                StreamAsync(http, null, feed, clock))
            .WithName("watchPlatformWebhookGatewayEvents")
            .WithSummary("The platform log live, as text/event-stream: an entry event per new or changed entry (the list's columns; headers and body are in the entry's detail), a lost event when a slow watcher missed some, a skipped event with the number of entries left out past the live rate (WebhookGateway:StreamMaxEntriesPerSecond); a comment every 15 s.")
            .Produces<GatewayStreamEntry>(StatusCodes.Status200OK, "text/event-stream");
        platform.MapGet("/events/{entryId:guid}", async (Guid entryId, GatewayStore store, CancellationToken ct) =>
                await store.GetAsync(null, entryId, ct) is { } e ? Results.Ok(e) : NotFound())
            .WithName("getPlatformWebhookGatewayEvent").WithSummary("One platform log entry: headers (secrets cut), body, verification, changes.")
            .Produces<GatewayEntryResponse>().ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    private static void Map(RouteGroupBuilder g, string prefix, Func<System.Security.Claims.ClaimsPrincipal, Guid>? tenantOf, string read, string write)
    {
        Guid Tenant(HttpContext http) => tenantOf?.Invoke(http.User) ?? Guid.Parse((string)http.Request.RouteValues["tenant_id"]!);
        string Name(string verb, string noun) => prefix.Length == 0 ? verb + noun : prefix + char.ToUpperInvariant(verb[0]) + verb[1..] + noun;
        var who = prefix.Length == 0 ? "the tenant's" : "a tenant's";

        g.MapGet("/events", (Guid? before, string? verification, int? limit, HttpContext http, GatewayStore store, CancellationToken ct) =>
                ListAsync(Tenant(http), before, verification, limit, store, ct))
            .RequireAuthorization(read).WithName(Name("list", "WebhookGatewayEvents"))
            .WithSummary($"{Cap(who)} inbound webhook requests, newest first (the last 1,000 are kept); filter by verification, page with before.")
            .Produces<GatewayEntryPage>().ProducesValidationProblem();
        g.MapGet("/events/stream", (HttpContext http, GatewayFeed feed, TimeProvider clock) =>
                StreamAsync(http, Tenant(http), feed, clock))
            .RequireAuthorization(read).WithName(Name("watch", "WebhookGatewayEvents"))
            .WithSummary($"{Cap(who)} log live, as text/event-stream: an entry event per new or changed entry (the list's columns; headers and body are in the entry's detail), a lost event when a slow watcher missed some, a skipped event with the number of entries left out past the live rate (WebhookGateway:StreamMaxEntriesPerSecond); a comment every 15 s.")
            .Produces<GatewayStreamEntry>(StatusCodes.Status200OK, "text/event-stream");
        g.MapGet("/events/{entryId:guid}", async (Guid entryId, HttpContext http, GatewayStore store, CancellationToken ct) =>
                await store.GetAsync(Tenant(http), entryId, ct) is { } e ? Results.Ok(e) : NotFound())
            .RequireAuthorization(read).WithName(Name("get", "WebhookGatewayEvent"))
            .WithSummary("One entry: the request's headers (secrets cut to a prefix), body (first 16 KB), verification, and what each event changed.")
            .Produces<GatewayEntryResponse>().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPost("/events/{entryId:guid}/apply", (Guid entryId, HttpContext http, NpgsqlDataSource db, GatewayStore store,
                WakeSignal<EmailEventProcessor> processor, WakeSignal<GatewayFeed> feed, CancellationToken ct) =>
                ApplyAsync(Tenant(http), entryId, db, store, processor, feed, ct))
            .RequireAuthorization(write).WithName(Name("apply", "WebhookGatewayEvent"))
            .WithSummary("Apply an entry's events that were held while ingestion was off (they are processed now, whatever the switch says).")
            .Produces<GatewayEntryResponse>(StatusCodes.Status202Accepted).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        g.MapGet("/ingestion", async (HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                Results.Ok(await IngestionAsync(db, Tenant(http), ct)))
            .RequireAuthorization(read).WithName(Name("get", "WebhookGatewayIngestion"))
            .WithSummary($"Whether {who} inbound events are applied (on) or only stored and logged (off).")
            .Produces<GatewayIngestion>();
        g.MapPut("/ingestion", (SetGatewayIngestionRequest request, HttpContext http, SendEngineDbContext db, TimeProvider clock, CancellationToken ct) =>
                SetIngestionAsync(Tenant(http), request, db, clock, ct))
            .RequireAuthorization(write).WithName(Name("set", "WebhookGatewayIngestion"))
            .WithSummary("Turn ingestion on or off. Off: callbacks are still answered 200, stored and logged, but not applied; turning it on again "
                + "applies only new events (apply held entries one by one).")
            .Produces<GatewayIngestion>().ProducesValidationProblem();
        g.MapPost("/test-events", (GatewayTestEventRequest request, HttpContext http, GatewayTestEvents tests, CancellationToken ct) =>
                TestEventAsync(Tenant(http), request, tests, ct))
            .RequireAuthorization(write).WithName(Name("send", "WebhookGatewayTestEvent"))
            .WithSummary("Send a correctly signed sample callback of one type through this Send Engine's own webhook over HTTP; answers the request "
                + "and the response as sent and received, and the processor's outcome (\"test\": nothing real changes).")
            .Produces<GatewayTestEventResponse>().ProducesValidationProblem();
        g.MapGet("/attempts", (long? before, int? limit, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                AttemptsAsync(Tenant(http), before, limit, db, ct))
            .RequireAuthorization(read).WithName(Name("list", "WebhookGatewayAttempts"))
            .WithSummary($"{Cap(who)} outbound webhook delivery attempts over all endpoints, newest first: status, response code, latency, error.")
            .Produces<WebhookAttemptPage>().ProducesValidationProblem();
        g.MapPost("/attempts/{attemptId:long}/replay", (long attemptId, HttpContext http, SendEngineDbContext db, WebhookPublisher publisher,
                TimeProvider clock, CancellationToken ct) => ReplayAsync(Tenant(http), attemptId, db, publisher, clock, ct))
            .RequireAuthorization(write).WithName(Name("replay", "WebhookGatewayAttempt"))
            .WithSummary("Send the attempt's event again now: same webhook-id and body, signed anew; the retry schedule starts over.")
            .Produces<WebhookMessageResponse>(StatusCodes.Status202Accepted).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
    }

    private static string Cap(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    private static async Task<IResult> ListAsync(Guid? tenantId, Guid? before, string? verification, int? limit, GatewayStore store, CancellationToken ct)
    {
        var v = new Validation();
        var size = limit ?? 50;
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        if (verification is { Length: > 0 } && !GatewayVerifications.All.Contains(verification))
        {
            v.Add("verification", $"Unknown verification; known: {string.Join(", ", GatewayVerifications.All)}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        return Results.Ok(await store.ListAsync(tenantId, before, string.IsNullOrEmpty(verification) ? null : verification, size, ct));
    }

    private static async Task<IResult> StreamAsync(HttpContext http, Guid? tenantId, GatewayFeed feed, TimeProvider clock)
    {
        var ct = http.RequestAborted;
        var response = http.Response;
        using var watcher = feed.Watch(tenantId);
        try
        {
            // From here on every new entry reaches this watcher; the headers tell the client so.
            await watcher.Ready.WaitAsync(ct);
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            // Reverse proxies (nginx) would otherwise hold the events back.
            response.Headers["X-Accel-Buffering"] = "no";
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            await response.StartAsync(ct);
            var body = response.BodyWriter;
            body.Write(": watching\n\n"u8);
            await body.FlushAsync(ct);
            // The feed's loop writes the entries (and the heartbeat) from now on, in this watcher's phase of each pass; the
            // request only waits for the client to leave (or the feed to stop).
            watcher.Attach(body, clock.GetUtcNow());
            await watcher.Done.WaitAsync(ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The watcher went away.
        }
        finally
        {
            // Kestrel completes the response once this returns: the feed must be done with it first.
            await watcher.CloseAsync();
        }
        return Results.Empty;
    }

    private static async Task<IResult> ApplyAsync(Guid tenantId, Guid entryId, NpgsqlDataSource db, GatewayStore store,
        WakeSignal<EmailEventProcessor> processor, WakeSignal<GatewayFeed> feed, CancellationToken ct)
    {
        if (await store.GetAsync(tenantId, entryId, ct) is null)
        {
            return NotFound();
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // Back into the processor's queue, marked to be applied whatever the switch says.
        var requeued = await Sql.ExecuteAsync(conn, tx, """
            UPDATE email_events v SET processed_at = NULL, outcome = NULL, effect = NULL, next_attempt_at = NULL, force_apply = true
            FROM webhook_gateway_entries e
            WHERE e.id = $1 AND v.id BETWEEN e.first_event_id AND e.last_event_id AND v.gateway_entry_id = e.id
              AND v.tenant_id = $2 AND v.outcome = 'held'
            """, ct, entryId, tenantId);
        if (requeued == 0)
        {
            return TypedResults.Problem(statusCode: 409, title: "Nothing held", detail: "The entry has no events held by the ingestion switch.");
        }
        // The live views show it pending again (and the processor announces it once applied).
        await Sql.ExecuteAsync(conn, tx, $"SELECT pg_notify('{GatewayFeed.Channel}', $1)", ct, entryId.ToString("N"));
        await tx.CommitAsync(ct);
        processor.Notify();
        feed.Notify();
        return TypedResults.Accepted((string?)null, await store.GetAsync(tenantId, entryId, ct));
    }

    private static async Task<GatewayIngestion> IngestionAsync(SendEngineDbContext db, Guid tenantId, CancellationToken ct) =>
        await db.Set<GatewaySetting>().AsNoTracking().Where(s => s.TenantId == tenantId)
            .Select(s => new GatewayIngestion(s.IngestionEnabled, s.UpdatedAt)).FirstOrDefaultAsync(ct)
        ?? new GatewayIngestion(true, null);

    private static async Task<IResult> SetIngestionAsync(Guid tenantId, SetGatewayIngestionRequest request, SendEngineDbContext db, TimeProvider clock,
        CancellationToken ct)
    {
        if (request.Enabled is not { } enabled)
        {
            return TypedResults.ValidationProblem(new Validation().Add("enabled", "Give enabled: true or false.").Errors);
        }
        var now = clock.GetUtcNow();
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO webhook_gateway_settings (tenant_id, ingestion_enabled, updated_at) VALUES ({tenantId}, {enabled}, {now})
            ON CONFLICT (tenant_id) DO UPDATE SET ingestion_enabled = excluded.ingestion_enabled, updated_at = excluded.updated_at
            """, ct);
        return Results.Ok(new GatewayIngestion(enabled, now));
    }

    private static async Task<IResult> TestEventAsync(Guid tenantId, GatewayTestEventRequest request, GatewayTestEvents tests, CancellationToken ct)
    {
        if (request.Type is not { } type || !GatewayTestEventTypes.All.Contains(type))
        {
            return TypedResults.ValidationProblem(new Validation().Add("type", $"Give one of: {string.Join(", ", GatewayTestEventTypes.All)}.").Errors);
        }
        return Results.Ok(await tests.SendAsync(tenantId, type, ct));
    }

    private static async Task<IResult> AttemptsAsync(Guid tenantId, long? before, int? limit, SendEngineDbContext db, CancellationToken ct)
    {
        var size = limit ?? 50;
        if (size is < 1 or > MaxPageSize)
        {
            return TypedResults.ValidationProblem(new Validation().Add("limit", $"The limit must be between 1 and {MaxPageSize}.").Errors);
        }
        var cursor = before ?? long.MaxValue;
        var rows = await db.Set<WebhookAttempt>().AsNoTracking()
            .Where(a => a.TenantId == tenantId && a.Id < cursor)
            .OrderByDescending(a => a.Id).Take(size).ToListAsync(ct);
        return Results.Ok(new WebhookAttemptPage(
            rows.Select(a => new WebhookAttemptResponse(a.Id, a.WebhookId, a.EventType, a.AttemptedAt, a.Url, a.RequestBody, a.ResponseStatus,
                a.ResponseBody, a.Error, a.LatencyMs, a.Replay)).ToList(),
            rows.Count == size ? rows[^1].Id : null));
    }

    private static async Task<IResult> ReplayAsync(Guid tenantId, long attemptId, SendEngineDbContext db, WebhookPublisher publisher, TimeProvider clock,
        CancellationToken ct)
    {
        var attempt = await db.Set<WebhookAttempt>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == attemptId && a.TenantId == tenantId, ct);
        if (attempt is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Webhook attempt not found");
        }
        var state = await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => e.Id == attempt.EndpointId && e.TenantId == tenantId)
            .Select(e => e.State).FirstOrDefaultAsync(ct);
        if (state != WebhookEndpointStates.Enabled)
        {
            return TypedResults.Problem(statusCode: 409, title: "Endpoint not enabled", detail: "Enable the endpoint before replaying its events.");
        }
        var now = clock.GetUtcNow();
        // The same outbox row: same webhook-id and body, a new signature at send time.
        var changed = await db.Set<WebhookMessage>()
            .Where(m => m.Id == attempt.MessageId && m.TenantId == tenantId)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, WebhookMessageStatuses.Pending).SetProperty(m => m.Attempts, 0)
                .SetProperty(m => m.NextAttemptAt, now).SetProperty(m => m.CompletedAt, (DateTimeOffset?)null).SetProperty(m => m.Replay, true), ct);
        if (changed == 0)
        {
            return TypedResults.Problem(statusCode: 404, title: "Webhook message not found");
        }
        publisher.Notify();
        var message = await db.Set<WebhookMessage>().AsNoTracking().FirstAsync(m => m.Id == attempt.MessageId, ct);
        return TypedResults.Accepted((string?)null, WebhookEndpointsApi.ToResponse(message));
    }

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Webhook gateway entry not found");
}
