using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts.SenderDomains;
using Newsletter.ServiceDefaults;
using SendEngine.Extensions;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// Sender domains: the tenant's own (/api/sender-domains, send_api tokens: newsletter:send.read to list,
/// newsletter:send.write to change) and any tenant's (/admin/tenants/{tenant_id}/sender-domains, platform:admin).
/// Member Center owns tenants; the admin routes take the tenant id as given. Another tenant's domain is a 404.
/// </summary>
public static class SenderDomainsApi
{
    public static IEndpointRouteBuilder MapSenderDomainsApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/sender-domains").WithTags("Sender domains");
        tenant.MapGet("/", (ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => List(user.TenantId(), store, ct))
            .RequireAuthorization(AuthExtensions.SendRead).WithName("listSenderDomains")
            .WithSummary("The caller's sender domains, by name, with the DNS records to publish and what the last check found.");
        tenant.MapPost("/", (AddSenderDomainRequest request, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) =>
                Add(user.TenantId(), request, store, "/api/sender-domains", ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("addSenderDomain")
            .WithSummary("Register a domain to send mail from; its DKIM key is generated and the records to publish are answered.");
        tenant.MapGet("/{domain}", (string domain, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => Get(user.TenantId(), domain, store, ct))
            .RequireAuthorization(AuthExtensions.SendRead).WithName("getSenderDomain")
            .WithSummary("One sender domain: status, last check, and the DNS records to publish with what was found.");
        tenant.MapPost("/{domain}/verify", (string domain, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => Verify(user.TenantId(), domain, store, ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("verifySenderDomain")
            .WithSummary("Look the domain's DNS records up now and set its status (verified needs DKIM and the return-path MX and SPF).");
        tenant.MapPost("/{domain}/dkim/rotate", (string domain, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => Rotate(user.TenantId(), domain, store, ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("rotateSenderDomainDkimKey")
            .WithSummary("Generate a new DKIM key that signs from now on; the previous selector stays listed and checked for 7 days.");
        tenant.MapDelete("/{domain}", (string domain, ClaimsPrincipal user, SenderDomainStore store, CancellationToken ct) => Remove(user.TenantId(), domain, store, ct))
            .RequireAuthorization(AuthExtensions.SendWrite).WithName("removeSenderDomain").WithSummary("Remove a sender domain and its DKIM keys.");

        var admin = app.MapGroup("/admin/tenants/{tenantId:guid}/sender-domains").WithTags("Admin").RequireAuthorization(AuthExtensions.Admin);
        admin.MapGet("/", (Guid tenantId, SenderDomainStore store, CancellationToken ct) => List(tenantId, store, ct))
            .WithName("adminListSenderDomains").WithSummary("A tenant's sender domains, with their DNS records.");
        admin.MapPost("/", (Guid tenantId, AddSenderDomainRequest request, SenderDomainStore store, CancellationToken ct) =>
                Add(tenantId, request, store, $"/admin/tenants/{tenantId}/sender-domains", ct))
            .WithName("adminAddSenderDomain").WithSummary("Register a sender domain for a tenant.");
        admin.MapGet("/{domain}", (Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) => Get(tenantId, domain, store, ct))
            .WithName("adminGetSenderDomain").WithSummary("One of a tenant's sender domains.");
        admin.MapPost("/{domain}/verify", (Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) => Verify(tenantId, domain, store, ct))
            .WithName("adminVerifySenderDomain").WithSummary("Check a tenant's sender domain in DNS now.");
        admin.MapPost("/{domain}/dkim/rotate", (Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) => Rotate(tenantId, domain, store, ct))
            .WithName("adminRotateSenderDomainDkimKey").WithSummary("Rotate a tenant's sender domain DKIM key.");
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

    private static async Task<Results<Ok<SenderDomainResponse>, ProblemHttpResult>> Get(Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) =>
        await store.GetAsync(tenantId, domain, ct) is { } found ? TypedResults.Ok(found) : NotFound();

    private static async Task<Results<Ok<SenderDomainResponse>, ProblemHttpResult>> Verify(Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) =>
        await store.VerifyAsync(tenantId, domain, ct) is { } found ? TypedResults.Ok(found) : NotFound();

    private static async Task<Results<Ok<SenderDomainResponse>, ProblemHttpResult>> Rotate(Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) =>
        await store.RotateAsync(tenantId, domain, ct) is { } found ? TypedResults.Ok(found) : NotFound();

    private static async Task<Results<NoContent, ProblemHttpResult>> Remove(Guid tenantId, string domain, SenderDomainStore store, CancellationToken ct) =>
        await store.RemoveAsync(tenantId, domain, ct) ? TypedResults.NoContent() : NotFound();

    private static ProblemHttpResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Sender domain not found");
}
