using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts.SenderDomains;
using Newsletter.ServiceDefaults;
using SendEngine.Extensions;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// Sender domains: the tenant's own (/api/sender-domains, send_api tokens: newsletter:send.read to list,
/// newsletter:send.write to change) and any tenant's (/admin/tenants/{tenant_id}/sender-domains, platform:admin).
/// Member Center owns tenants; the admin routes take the tenant id as given.
/// </summary>
public static class SenderDomainsApi
{
    public static IEndpointRouteBuilder MapSenderDomainsApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/sender-domains").WithTags("Sender domains");
        tenant.MapGet("/", (ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => List(user.TenantId(), store, ct))
            .RequireAuthorization(AuthExtensions.SendRead).WithName("listSenderDomains").WithSummary("The caller's sender domains, by name.");
        tenant.MapPost("/", (AddSenderDomainRequest request, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) =>
                Add(user.TenantId(), request, store, "/api/sender-domains", ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("addSenderDomain").WithSummary("Register a domain to send transactional mail from.");
        tenant.MapDelete("/{domain}", (string domain, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => Remove(user.TenantId(), domain, store, ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("removeSenderDomain").WithSummary("Remove a sender domain.");

        var admin = app.MapGroup("/admin/tenants/{tenantId:guid}/sender-domains").WithTags("Admin").RequireAuthorization(AuthExtensions.Admin);
        admin.MapGet("/", (Guid tenantId, SenderDomainStore store, CancellationToken ct) => List(tenantId, store, ct))
            .WithName("adminListSenderDomains").WithSummary("A tenant's sender domains.");
        admin.MapPost("/", (Guid tenantId, AddSenderDomainRequest request, SenderDomainStore store, CancellationToken ct) =>
                Add(tenantId, request, store, $"/admin/tenants/{tenantId}/sender-domains", ct))
            .WithName("adminAddSenderDomain").WithSummary("Register a sender domain for a tenant.");
        admin.MapDelete("/{domain}", (Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) => Remove(tenantId, domain, store, ct))
            .WithName("adminRemoveSenderDomain").WithSummary("Remove a tenant's sender domain.");
        return app;
    }

    private static async Task<Ok<List<SenderDomainResponse>>> List(Guid tenantId, SenderDomainStore store, CancellationToken ct) =>
        TypedResults.Ok(await store.ListAsync(tenantId, ct));

    private static async Task<Results<Created<SenderDomainResponse>, Ok<SenderDomainResponse>, ValidationProblem, ProblemHttpResult>> Add(
        Guid tenantId, AddSenderDomainRequest request, SenderDomainStore store, string basePath, CancellationToken ct)
    {
        var (result, domain, error) = await store.AddAsync(tenantId, request.Domain, ct);
        return result switch
        {
            SenderDomainStore.AddResult.Created => TypedResults.Created($"{basePath}/{domain!.Domain}", domain),
            SenderDomainStore.AddResult.Existing => TypedResults.Ok(domain!),
            SenderDomainStore.AddResult.TooMany => TypedResults.Problem(statusCode: 409, title: "Too many sender domains", detail: error),
            _ => TypedResults.ValidationProblem(new Validation().Add("domain", error!).Errors),
        };
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Remove(Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) =>
        await store.RemoveAsync(tenantId, domain, ct) ? TypedResults.NoContent() : TypedResults.Problem(statusCode: 404, title: "Sender domain not found");
}
