using System.Net.Mail;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Data;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Data;
using SendEngine.Extensions;

namespace SendEngine.Features.Suppressions;

/// <summary>The tenant's suppression list: read (send.read), add and remove (send.write).</summary>
public static class SuppressionsApi
{
    public const int MaxPageSize = 1000;
    private static readonly string[] Reasons = [SuppressionReasons.HardBounce, SuppressionReasons.Complaint, SuppressionReasons.Unsubscribe, "manual"];
    /// <summary>Where a suppression came from (<see cref="Suppression.Source"/>).</summary>
    private static readonly string[] Sources = ["api", SuppressionStore.SourceEsp, SuppressionStore.SourceDelivery, SuppressionStore.SourceErasure];

    public static IEndpointRouteBuilder MapSuppressionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/suppressions").WithTags("Suppressions");
        api.MapGet("/", List).RequireAuthorization(AuthExtensions.SendRead).WithName("listSuppressions")
            .WithSummary("Suppressed addresses in address order, optionally by address prefix (email), reason and source; pass next_cursor as after.");
        api.MapPost("/", Add).RequireAuthorization(AuthExtensions.SendWrite).WithName("addSuppression").WithSummary("Suppress an address for all the tenant's jobs.");
        api.MapDelete("/{email}", Remove).RequireAuthorization(AuthExtensions.SendWrite).WithName("removeSuppression").WithSummary("Remove an address from the suppression list.");
        return app;
    }

    /// <summary>
    /// Keyset pages in byte order of the address (ix_suppressions_tenant_id_email, or ix_suppressions_tenant_id_reason_email with a
    /// reason): an address prefix is the range [prefix, successor), so a page is an index range scan however many
    /// addresses the tenant suppressed. Source is a filter on that range (three values, none rare enough to index).
    /// </summary>
    private static async Task<Results<Ok<SuppressionPage>, ValidationProblem>> List(string? after, int? limit, string? email, string? reason,
        string? source, ClaimsPrincipal user, SendEngineDbContext db, CancellationToken ct)
    {
        var size = limit ?? 100;
        var v = new Validation();
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        // Stored addresses are identity keys (lower-cased); a prefix of the local part is lower-cased the same way.
        var prefix = email?.Trim().ToLowerInvariant();
        if (prefix is { Length: > 320 })
        {
            v.Add("email", "The email prefix must be at most 320 characters.");
        }
        foreach (var (name, value) in new[] { ("email", prefix), ("after", after) })
        {
            if (value is not null && !StorableText.IsStorable(value))
            {
                v.Add(name, StorableText.Problem);
            }
        }
        if (reason is { Length: > 0 } && !Reasons.Append(SuppressionStore.ReasonErased).Contains(reason))
        {
            v.Add("reason", $"The reason must be one of: {string.Join(", ", Reasons.Append(SuppressionStore.ReasonErased))}.");
        }
        if (source is { Length: > 0 } && !Sources.Contains(source))
        {
            v.Add("source", $"The source must be one of: {string.Join(", ", Sources)}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var tenantId = user.TenantId();
        var query = db.Suppressions.AsNoTracking().Where(s => s.TenantId == tenantId);
        if (reason is { Length: > 0 })
        {
            query = query.Where(s => s.Reason == reason);
        }
        if (source is { Length: > 0 })
        {
            query = query.Where(s => s.Source == source);
        }
        if (!string.IsNullOrEmpty(prefix))
        {
            query = query.Where(s => string.Compare(EF.Functions.Collate(s.Email, "C"), prefix) >= 0);
            if (CodePointOrder.Successor(prefix) is { } upper)
            {
                query = query.Where(s => string.Compare(EF.Functions.Collate(s.Email, "C"), upper) < 0);
            }
        }
        if (!string.IsNullOrEmpty(after))
        {
            query = query.Where(s => string.Compare(EF.Functions.Collate(s.Email, "C"), after) > 0);
        }
        var rows = await query.OrderBy(s => EF.Functions.Collate(s.Email, "C")).Take(size + 1).ToListAsync(ct);
        var more = rows.Count > size;
        if (more)
        {
            rows.RemoveAt(rows.Count - 1);
        }
        return TypedResults.Ok(new SuppressionPage(rows.Select(ToResponse).ToList(), more ? rows[^1].Email : null));
    }

    private static async Task<Results<Created<SuppressionResponse>, Ok<SuppressionResponse>, ValidationProblem, ProblemHttpResult>> Add(
        AddSuppressionRequest request, ClaimsPrincipal user, SendEngineDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var v = new Validation().Required("email", request.Email);
        if (request.TenantId is { Length: > 0 } t && (!Guid.TryParse(t, out var bodyTenant) || bodyTenant != tenantId))
        {
            return TypedResults.Problem(statusCode: 403, title: "Forbidden", detail: "The tenant_id does not match the access token's tenant.");
        }
        if (request.Email is { Length: > 0 } e && (e.Length > 320 || !MailAddress.TryCreate(e.Trim(), out _)))
        {
            v.Add("email", "The email is not a valid address.");
        }
        var reason = request.Reason is { Length: > 0 } r ? r : "manual";
        if (!Reasons.Contains(reason))
        {
            v.Add("reason", $"The reason must be one of: {string.Join(", ", Reasons)}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var email = Suppression.Normalize(request.Email!);
        var now = clock.GetUtcNow();
        // One statement decides who creates the row, so two concurrent requests for one address both succeed (201 and
        // 200) instead of the loser failing on the primary key. A removal between the insert and the read is retried.
        for (var attempt = 0; ; attempt++)
        {
            var inserted = await db.Suppressions.FromSql($"""
                INSERT INTO suppressions (tenant_id, email, reason, source, created_at) VALUES ({tenantId}, {email}, {reason}, 'api', {now})
                ON CONFLICT (tenant_id, email) DO NOTHING
                RETURNING *
                """).AsNoTracking().ToListAsync(ct);
            if (inserted.Count == 1)
            {
                // The address is in the row's target only masked: an erasure must not leave it in an append-only log.
                log.Describe(null, new { reason = inserted[0].Reason, source = inserted[0].Source });
                return TypedResults.Created($"/api/suppressions/{Uri.EscapeDataString(email)}", ToResponse(inserted[0]));
            }
            var existing = await db.Suppressions.AsNoTracking().FirstOrDefaultAsync(s => s.TenantId == tenantId && s.Email == email, ct);
            if (existing is not null)
            {
                return TypedResults.Ok(ToResponse(existing));
            }
            if (attempt == 2)
            {
                return TypedResults.Problem(statusCode: 409, title: "Conflict", detail: "The address was added and removed concurrently; try again.");
            }
        }
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Remove(string email, ClaimsPrincipal user, SendEngineDbContext db,
        Newsletter.ServiceDefaults.Privacy.AddressHasher hasher, IOperationLog log, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var key = Suppression.Normalize(email);
        // An erased address is suppressed by its keyed hash: the tenant lifts that by naming the address too.
        var marker = hasher.ErasedMarker(key);
        var before = await db.Suppressions.AsNoTracking().Where(s => s.TenantId == tenantId && (s.Email == key || s.Email == marker))
            .Select(s => new { reason = s.Reason, source = s.Source, created_at = s.CreatedAt }).FirstOrDefaultAsync(ct);
        var deleted = await db.Suppressions.Where(s => s.TenantId == tenantId && (s.Email == key || s.Email == marker)).ExecuteDeleteAsync(ct);
        log.Describe(before, null);
        return deleted == 0 ? TypedResults.Problem(statusCode: 404, title: "Suppression not found") : TypedResults.NoContent();
    }

    private static SuppressionResponse ToResponse(Suppression s) => new(s.TenantId.ToString(), s.Email, s.Reason, s.Source, s.CreatedAt);
}
