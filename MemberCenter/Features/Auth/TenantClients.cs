using MemberCenter.Data;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Auth;

/// <summary>
/// A tenant's API clients, as both the admin API (/admin/tenants/{id}/clients, /admin/clients/...) and the tenant's own
/// API (/api/clients, scope newsletter:clients) manage them. <c>tenantId</c> null on rotate/disable: any tenant's client
/// (the admin API); otherwise only that tenant's, another tenant's being a 404.
/// </summary>
public static class TenantClients
{
    private static readonly string[] TenantUsages = [ClientUsages.SendApi, ClientUsages.TenantApi];

    public static async Task<Results<Created<ApiClientSecretResponse>, ValidationProblem, ProblemHttpResult>> CreateAsync(
        Guid tenantId, CreateClientRequest request, string location, MemberCenterDbContext db, ApiClientRegistry registry, CancellationToken ct)
    {
        var v = new Validation().Required("usage", request.Usage).MaxLength("name", request.Name, 200);
        if (request.Usage is { Length: > 0 } usage && !TenantUsages.Contains(usage))
        {
            v.Add("usage", $"The usage must be one of: {string.Join(", ", TenantUsages)}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "Tenant not found");
        }
        var secret = ApiClientRegistry.NewSecret();
        var clientId = $"{request.Usage!.Replace('_', '-')}-{Guid.NewGuid():N}";
        var client = await registry.CreateAsync(clientId, tenantId, request.Usage, request.Name?.Trim() is { Length: > 0 } n ? n : clientId, secret, ct);
        return TypedResults.Created(location,
            new ApiClientSecretResponse(client.ClientId, tenantId.ToString(), client.Usage, secret, ClientUsagePolicy.ScopesOf(client.Usage)));
    }

    public static async Task<List<ApiClientResponse>> ListAsync(Guid tenantId, MemberCenterDbContext db, CancellationToken ct)
    {
        var clients = await db.ApiClients.AsNoTracking().Where(c => c.TenantId == tenantId).OrderBy(c => c.CreatedAt).ToListAsync(ct);
        return clients.Select(c => new ApiClientResponse(c.ClientId, tenantId.ToString(), c.Usage, c.Name, ClientUsagePolicy.ScopesOf(c.Usage), c.DisabledAt is not null, c.CreatedAt)).ToList();
    }

    public static async Task<Results<Ok<ApiClientSecretResponse>, ProblemHttpResult>> RotateSecretAsync(
        string clientId, Guid? tenantId, MemberCenterDbContext db, ApiClientRegistry registry, CancellationToken ct)
    {
        var client = await db.ApiClients.AsNoTracking()
            .FirstOrDefaultAsync(c => c.ClientId == clientId && c.TenantId != null && (tenantId == null || c.TenantId == tenantId), ct);
        var secret = client is null ? null : await registry.RotateSecretAsync(clientId, ct);
        return client is null || secret is null
            ? NotFound()
            : TypedResults.Ok(new ApiClientSecretResponse(client.ClientId, client.TenantId!.Value.ToString(), client.Usage, secret, ClientUsagePolicy.ScopesOf(client.Usage)));
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> DisableAsync(
        string clientId, Guid? tenantId, MemberCenterDbContext db, ApiClientCache cache, TimeProvider clock, CancellationToken ct)
    {
        // Platform clients come from configuration; disabling them here would be undone on the next start.
        var updated = await db.ApiClients.Where(c => c.ClientId == clientId && c.TenantId != null && (tenantId == null || c.TenantId == tenantId))
            .ExecuteUpdateAsync(u => u.SetProperty(c => c.DisabledAt, c => c.DisabledAt ?? clock.GetUtcNow()), ct);
        cache.Evict(clientId);
        return updated == 0 ? NotFound() : TypedResults.NoContent();
    }

    private static ProblemHttpResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Client not found");
}
