using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Data;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// Tenants' event webhook endpoints: the tenant API (scope newsletter:webhooks, the token's tenant) under
/// /api/webhook-endpoints and the same operations for operators (platform:admin) under
/// /admin/tenants/{tenant_id}/webhook-endpoints. Another tenant's endpoint, message or attempt is a 404.
/// </summary>
public static class WebhookEndpointsApi
{
    public const string TenantPolicy = "webhooks";
    public const int MaxPageSize = 200;

    public static IEndpointRouteBuilder MapWebhookEndpointsApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/webhook-endpoints").WithTags("Webhooks").RequireAuthorization(TenantPolicy);
        Map(tenant, "", user => user.TenantId());
        var admin = app.MapGroup("/admin/tenants/{tenant_id:guid}/webhook-endpoints").WithTags("Webhooks (admin)").RequireAuthorization(Extensions.AuthExtensions.Admin);
        Map(admin, "admin", null);
        return app;
    }

    /// <summary>The routes of one group; <paramref name="tenantOf"/> null: the tenant comes from the route (admin).</summary>
    private static void Map(RouteGroupBuilder g, string prefix, Func<ClaimsPrincipal, Guid>? tenantOf)
    {
        Guid Tenant(HttpContext http) => tenantOf?.Invoke(http.User) ?? Guid.Parse((string)http.Request.RouteValues["tenant_id"]!);
        string Name(string verb, string noun) => prefix.Length == 0 ? verb + noun : prefix + char.ToUpperInvariant(verb[0]) + verb[1..] + noun;
        var who = prefix.Length == 0 ? "the tenant's" : "a tenant's";

        g.MapPost("/", (CreateWebhookEndpointRequest request, HttpContext http, SendEngineDbContext db, WebhookTargetGuard guard,
                WebhookSecretProtector secrets, WebhookPublisher publisher, IOptions<EventWebhookOptions> options, TimeProvider clock, IOperationLog log,
                CancellationToken ct) =>
                CreateAsync(Tenant(http), request, db, guard, secrets, publisher, options.Value, clock, log, ct))
            .WithName(Name("create", "WebhookEndpoint"))
            .WithSummary($"Register {who} webhook endpoint; the answer carries its signing secret, shown only this once.")
            .Produces<WebhookEndpointSecretResponse>(StatusCodes.Status201Created).ProducesValidationProblem();
        g.MapGet("/", async (HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var rows = await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => e.TenantId == tenantId).OrderBy(e => e.CreatedAt).ToListAsync(ct);
                return TypedResults.Ok(new WebhookEndpointList(rows.Select(ToResponse).ToList()));
            })
            .WithName(Name("list", "WebhookEndpoints")).WithSummary($"List {who} webhook endpoints (without secrets).");
        g.MapGet("/{endpointId:guid}", async (Guid endpointId, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                await FindAsync(db, Tenant(http), endpointId, ct) is { } e ? Results.Ok(ToResponse(e)) : NotFound())
            .WithName(Name("get", "WebhookEndpoint")).WithSummary($"Read one of {who} webhook endpoints, with its state.")
            .Produces<WebhookEndpointResponse>().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPatch("/{endpointId:guid}", (Guid endpointId, UpdateWebhookEndpointRequest request, HttpContext http, SendEngineDbContext db,
                WebhookTargetGuard guard, WebhookPublisher publisher, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                UpdateAsync(Tenant(http), endpointId, request, db, guard, publisher, clock, log, ct))
            .WithName(Name("update", "WebhookEndpoint"))
            .WithSummary("Change the url, event types, description or enabled state; enabling also revives an endpoint disabled for failing.")
            .Produces<WebhookEndpointResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapDelete("/{endpointId:guid}", async (Guid endpointId, HttpContext http, SendEngineDbContext db, WebhookPublisher publisher, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var deleted = await db.Set<WebhookEndpoint>().Where(e => e.TenantId == tenantId && e.Id == endpointId).ExecuteDeleteAsync(ct);
                publisher.Invalidate(tenantId);
                return deleted == 0 ? NotFound() : Results.NoContent();
            })
            .WithName(Name("delete", "WebhookEndpoint")).WithSummary("Delete an endpoint with its queued messages and attempts.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPost("/{endpointId:guid}/rotate-secret", (Guid endpointId, RotateWebhookSecretRequest? request, HttpContext http, SendEngineDbContext db,
                WebhookSecretProtector secrets, IOptions<EventWebhookOptions> options, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                RotateAsync(Tenant(http), endpointId, request, db, secrets, options.Value, clock, log, ct))
            .WithName(Name("rotate", "WebhookEndpointSecret"))
            .WithSummary("Replace the signing secret (shown once); the previous one keeps signing too until the overlap ends.")
            .Produces<WebhookEndpointSecretResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapGet("/{endpointId:guid}/attempts", (Guid endpointId, long? before, int? limit, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                AttemptsAsync(Tenant(http), endpointId, before, limit, db, ct))
            .WithName(Name("list", "WebhookAttempts"))
            .WithSummary("The endpoint's delivery attempts, newest first: request, response status and first 1 KB, latency (kept 7 days).")
            .Produces<WebhookAttemptPage>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapGet("/{endpointId:guid}/messages", (Guid endpointId, long? before, int? limit, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                MessagesAsync(Tenant(http), endpointId, before, limit, db, ct))
            .WithName(Name("list", "WebhookMessages"))
            .WithSummary("The events queued for the endpoint, newest first, with their delivery state; message_id is the webhook-id.")
            .Produces<WebhookMessagePage>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPost("/{endpointId:guid}/messages/{messageId}/replay", (Guid endpointId, string messageId, HttpContext http, SendEngineDbContext db,
                WebhookPublisher publisher, TimeProvider clock, CancellationToken ct) =>
                ReplayAsync(Tenant(http), endpointId, messageId, db, publisher, clock, ct))
            .WithName(Name("replay", "WebhookMessage"))
            .WithSummary("Send an event again now, with the same webhook-id and body, whatever its state; the retry schedule starts over.")
            .Produces<WebhookMessageResponse>(StatusCodes.Status202Accepted).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
    }

    private static async Task<IResult> CreateAsync(Guid tenantId, CreateWebhookEndpointRequest request, SendEngineDbContext db, WebhookTargetGuard guard,
        WebhookSecretProtector secrets, WebhookPublisher publisher, EventWebhookOptions options, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("url", request.Url).MaxLength("description", request.Description, 500);
        if (request.Url is { Length: > 0 } url && await guard.CheckUrlAsync(url.Trim(), ct) is { } urlError)
        {
            v.Add("url", urlError);
        }
        var types = CheckTypes(v, request.EventTypes, required: true);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (await db.Set<WebhookEndpoint>().CountAsync(e => e.TenantId == tenantId, ct) >= options.MaxEndpointsPerTenant)
        {
            return TypedResults.ValidationProblem(new Validation().Add("url", $"A tenant has at most {options.MaxEndpointsPerTenant} endpoints.").Errors);
        }
        var now = clock.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var secret = WebhookSecretProtector.NewSecret();
        var endpoint = new WebhookEndpoint
        {
            Id = id, TenantId = tenantId, Url = request.Url!.Trim(), EventTypes = types, Description = request.Description,
            Secret = secrets.Protect(id, secret), CreatedAt = now, UpdatedAt = now,
        };
        db.Add(endpoint);
        await db.SaveChangesAsync(ct);
        publisher.Invalidate(tenantId);
        var created = new WebhookEndpointSecretResponse(ToResponse(endpoint), WebhookSecretProtector.Display(secret));
        // The redactor drops the secret.
        log.Describe(null, created);
        return TypedResults.Created(Location(id), created);
    }

    private static async Task<IResult> UpdateAsync(Guid tenantId, Guid endpointId, UpdateWebhookEndpointRequest request, SendEngineDbContext db,
        WebhookTargetGuard guard, WebhookPublisher publisher, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var endpoint = await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.TenantId == tenantId && e.Id == endpointId, ct);
        if (endpoint is null)
        {
            return NotFound();
        }
        var before = ToResponse(endpoint);
        var v = new Validation().MaxLength("description", request.Description, 500);
        if (request.Url is not null && await guard.CheckUrlAsync(request.Url.Trim(), ct) is { } urlError)
        {
            v.Add("url", urlError);
        }
        var types = request.EventTypes is null ? null : CheckTypes(v, request.EventTypes, required: true);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var now = clock.GetUtcNow();
        endpoint.Url = request.Url?.Trim() ?? endpoint.Url;
        endpoint.EventTypes = types ?? endpoint.EventTypes;
        endpoint.Description = request.Description ?? endpoint.Description;
        if (request.Enabled is { } enabled)
        {
            var state = enabled ? WebhookEndpointStates.Enabled : WebhookEndpointStates.Disabled;
            if (state != endpoint.State)
            {
                endpoint.State = state;
                endpoint.DisabledAt = enabled ? null : now;
                endpoint.DisabledReason = enabled ? null : "Disabled through the API.";
                // A revived endpoint starts a new failure window, unpaused.
                endpoint.FailingSince = null;
                endpoint.ConsecutiveFailures = 0;
                endpoint.PausedUntil = null;
            }
        }
        endpoint.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        publisher.Invalidate(tenantId);
        if (endpoint.State == WebhookEndpointStates.Enabled)
        {
            publisher.Notify();
        }
        log.Describe(before, ToResponse(endpoint));
        return Results.Ok(ToResponse(endpoint));
    }

    private static async Task<IResult> RotateAsync(Guid tenantId, Guid endpointId, RotateWebhookSecretRequest? request, SendEngineDbContext db,
        WebhookSecretProtector secrets, EventWebhookOptions options, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var overlap = request?.OverlapSeconds is { } s ? TimeSpan.FromSeconds(s) : options.DefaultRotationOverlap;
        if (overlap < TimeSpan.Zero || overlap > TimeSpan.FromDays(7))
        {
            return TypedResults.ValidationProblem(new Validation().Add("overlap_seconds", "The overlap must be between 0 and 604800 seconds (7 days).").Errors);
        }
        var endpoint = await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.TenantId == tenantId && e.Id == endpointId, ct);
        if (endpoint is null)
        {
            return NotFound();
        }
        var now = clock.GetUtcNow();
        var secret = WebhookSecretProtector.NewSecret();
        // The secret that signed until now signs along during the overlap; an older one still overlapping is dropped.
        endpoint.PreviousSecret = overlap > TimeSpan.Zero ? endpoint.Secret : null;
        endpoint.PreviousSecretExpiresAt = overlap > TimeSpan.Zero ? now + overlap : null;
        endpoint.Secret = secrets.Protect(endpoint.Id, secret);
        endpoint.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        var rotated = new WebhookEndpointSecretResponse(ToResponse(endpoint), WebhookSecretProtector.Display(secret));
        log.Describe(null, rotated);
        return Results.Ok(rotated);
    }

    private static async Task<IResult> AttemptsAsync(Guid tenantId, Guid endpointId, long? before, int? limit, SendEngineDbContext db, CancellationToken ct)
    {
        if (PageSize(limit) is not { } size)
        {
            return TypedResults.ValidationProblem(new Validation().Add("limit", $"The limit must be between 1 and {MaxPageSize}.").Errors);
        }
        if (await FindAsync(db, tenantId, endpointId, ct) is null)
        {
            return NotFound();
        }
        var cursor = before ?? long.MaxValue;
        var rows = await db.Set<WebhookAttempt>().AsNoTracking()
            .Where(a => a.EndpointId == endpointId && a.TenantId == tenantId && a.Id < cursor)
            .OrderByDescending(a => a.Id).Take(size).ToListAsync(ct);
        return Results.Ok(new WebhookAttemptPage(
            rows.Select(a => new WebhookAttemptResponse(a.Id, a.WebhookId, a.EventType, a.AttemptedAt, a.Url, a.RequestBody, a.ResponseStatus,
                a.ResponseBody, a.Error, a.LatencyMs, a.Replay)).ToList(),
            rows.Count == size ? rows[^1].Id : null));
    }

    private static async Task<IResult> MessagesAsync(Guid tenantId, Guid endpointId, long? before, int? limit, SendEngineDbContext db, CancellationToken ct)
    {
        if (PageSize(limit) is not { } size)
        {
            return TypedResults.ValidationProblem(new Validation().Add("limit", $"The limit must be between 1 and {MaxPageSize}.").Errors);
        }
        if (await FindAsync(db, tenantId, endpointId, ct) is null)
        {
            return NotFound();
        }
        var cursor = before ?? long.MaxValue;
        var rows = await db.Set<WebhookMessage>().AsNoTracking()
            .Where(m => m.EndpointId == endpointId && m.TenantId == tenantId && m.Id < cursor)
            .OrderByDescending(m => m.Id).Take(size).ToListAsync(ct);
        return Results.Ok(new WebhookMessagePage(rows.Select(ToResponse).ToList(), rows.Count == size ? rows[^1].Id : null));
    }

    private static async Task<IResult> ReplayAsync(Guid tenantId, Guid endpointId, string messageId, SendEngineDbContext db, WebhookPublisher publisher,
        TimeProvider clock, CancellationToken ct)
    {
        var endpoint = await FindAsync(db, tenantId, endpointId, ct);
        if (endpoint is null)
        {
            return NotFound();
        }
        if (endpoint.State != WebhookEndpointStates.Enabled)
        {
            return TypedResults.Problem(statusCode: 409, title: "Endpoint not enabled", detail: "Enable the endpoint before replaying its events.");
        }
        var now = clock.GetUtcNow();
        // Same row, same webhook-id and body: a receiver that already has the event recognises it.
        var changed = await db.Set<WebhookMessage>()
            .Where(m => m.EndpointId == endpointId && m.TenantId == tenantId && m.WebhookId == messageId)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, WebhookMessageStatuses.Pending).SetProperty(m => m.Attempts, 0)
                .SetProperty(m => m.NextAttemptAt, now).SetProperty(m => m.CompletedAt, (DateTimeOffset?)null).SetProperty(m => m.Replay, true), ct);
        if (changed == 0)
        {
            return TypedResults.Problem(statusCode: 404, title: "Message not found");
        }
        publisher.Notify();
        var message = await db.Set<WebhookMessage>().AsNoTracking().FirstAsync(m => m.EndpointId == endpointId && m.WebhookId == messageId, ct);
        return TypedResults.Accepted((string?)null, ToResponse(message));
    }

    private static string[] CheckTypes(Validation v, IReadOnlyList<string>? types, bool required)
    {
        if (types is null || types.Count == 0)
        {
            if (required)
            {
                v.Add("event_types", $"Name at least one event type: {string.Join(", ", WebhookEventTypes.All)}.");
            }
            return [];
        }
        var unknown = types.Where(t => !WebhookEventTypes.All.Contains(t)).ToList();
        if (unknown.Count > 0)
        {
            v.Add("event_types", $"Unknown event types: {string.Join(", ", unknown.Take(5))}; known: {string.Join(", ", WebhookEventTypes.All)}.");
        }
        return types.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    private static int? PageSize(int? limit) => (limit ?? 50) is var n && n is >= 1 and <= MaxPageSize ? n : null;

    private static Task<WebhookEndpoint?> FindAsync(SendEngineDbContext db, Guid tenantId, Guid endpointId, CancellationToken ct) =>
        db.Set<WebhookEndpoint>().AsNoTracking().FirstOrDefaultAsync(e => e.TenantId == tenantId && e.Id == endpointId, ct);

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Webhook endpoint not found");

    private static string Location(Guid id) => $"/api/webhook-endpoints/{id}";

    private static WebhookEndpointResponse ToResponse(WebhookEndpoint e) => new(e.Id.ToString(), e.TenantId.ToString(), e.Url, e.EventTypes, e.Description,
        e.State, e.DisabledReason, e.DisabledAt, e.FailingSince, e.ConsecutiveFailures, e.PausedUntil, e.PreviousSecretExpiresAt, e.CreatedAt, e.UpdatedAt);

    internal static WebhookMessageResponse ToResponse(WebhookMessage m) => new(m.WebhookId, m.EventType, m.Status, m.Attempts, m.CreatedAt,
        m.Status == WebhookMessageStatuses.Pending ? m.NextAttemptAt : null, m.CompletedAt, m.LastError);
}
