using MemberCenter.Data;
using MemberCenter.Extensions;
using MemberCenter.Features.Auth;
using MemberCenter.Features.Lists;
using MemberCenter.Features.Tenants;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;

namespace MemberCenter.Features.Admin;

/// <summary>Platform administration (scope platform:admin): tenants, their lists and clients, signing keys.</summary>
public static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").WithTags("Admin").RequireAuthorization(Policies.Admin);
        admin.MapPost("/tenants", CreateTenant).WithName("createTenant").WithSummary("Create a tenant; answers its tenant_id.");
        admin.MapGet("/tenants", ListTenants).WithName("listTenants").WithSummary("Every tenant, oldest first.");
        admin.MapPost("/tenants/{tenantId:guid}/lists", CreateList).WithName("createTenantList").WithSummary("Create a list for a tenant.");
        admin.MapGet("/tenants/{tenantId:guid}/lists", ListLists).WithName("listTenantLists").WithSummary("A tenant's lists, oldest first.");
        admin.MapPost("/tenants/{tenantId:guid}/clients", CreateClient).WithName("createTenantClient")
            .WithSummary("Create an API client (send_api or tenant_api) for a tenant; the secret is shown once.");
        admin.MapGet("/tenants/{tenantId:guid}/clients", ListClients).WithName("listTenantClients").WithSummary("A tenant's API clients, without secrets.");
        admin.MapPost("/clients/{clientId}/rotate-secret", RotateSecret).WithName("rotateClientSecret")
            .WithSummary("Issue a new client secret, shown once; the old one stops working.");
        admin.MapPost("/clients/{clientId}/disable", DisableClient).WithName("disableClient").WithSummary("Disable an API client: it gets no more tokens.");
        admin.MapGet("/signing-keys", ListSigningKeys).WithName("listSigningKeys").WithSummary("The token signing keys and their states.");
        admin.MapPost("/signing-keys/rotate", RotateSigningKey).WithName("rotateSigningKey").WithSummary("Add a new signing key (used at once with immediately=true).");
        admin.MapPost("/signing-keys/{kid}/revoke", RevokeSigningKey).WithName("revokeSigningKey").WithSummary("Revoke a signing key: tokens it signed stop validating.");
        return app;
    }

    private static async Task<Results<Created<TenantResponse>, ValidationProblem>> CreateTenant(CreateTenantRequest request, MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("name", request.Name).MaxLength("name", request.Name, 200);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var tenant = new Tenant { Id = Guid.CreateVersion7(), Name = request.Name!.Trim(), CreatedAt = clock.GetUtcNow() };
        db.Tenants.Add(tenant);
        await db.SaveChangesAsync(ct);
        log.ForTenant(tenant.Id);
        log.Describe(null, ToResponse(tenant));
        return TypedResults.Created($"/admin/tenants/{tenant.Id}", ToResponse(tenant));
    }

    private static async Task<Ok<List<TenantResponse>>> ListTenants(MemberCenterDbContext db, CancellationToken ct)
    {
        var tenants = await db.Tenants.AsNoTracking().OrderBy(t => t.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(tenants.Select(ToResponse).ToList());
    }

    private static async Task<Results<Created<MailingListResponse>, ValidationProblem, ProblemHttpResult>> CreateList(Guid tenantId, CreateListRequest request, MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("name", request.Name).MaxLength("name", request.Name, 200);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
        {
            return TenantNotFound();
        }
        var list = new MailingList { Id = Guid.CreateVersion7(), TenantId = tenantId, Name = request.Name!.Trim(), CreatedAt = clock.GetUtcNow() };
        db.MailingLists.Add(list);
        await db.SaveChangesAsync(ct);
        log.Describe(null, ListsApi.ToResponse(list));
        return TypedResults.Created($"/admin/tenants/{tenantId}/lists", ListsApi.ToResponse(list));
    }

    private static async Task<Results<Ok<List<MailingListResponse>>, ProblemHttpResult>> ListLists(Guid tenantId, MemberCenterDbContext db, CancellationToken ct)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
        {
            return TenantNotFound();
        }
        var lists = await db.MailingLists.AsNoTracking().Where(l => l.TenantId == tenantId).OrderBy(l => l.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(lists.Select(ListsApi.ToResponse).ToList());
    }

    private static async Task<Results<Created<ApiClientSecretResponse>, ValidationProblem, ProblemHttpResult>> CreateClient(Guid tenantId, CreateClientRequest request, MemberCenterDbContext db, ApiClientRegistry registry, IOperationLog log, CancellationToken ct)
    {
        var result = await TenantClients.CreateAsync(tenantId, request, $"/admin/tenants/{tenantId}/clients", db, registry, ct);
        if (result.Result is Created<ApiClientSecretResponse> { Value: { } created })
        {
            // The redactor drops client_secret.
            log.Describe(null, created);
        }
        return result;
    }

    private static async Task<Results<Ok<List<ApiClientResponse>>, ProblemHttpResult>> ListClients(Guid tenantId, MemberCenterDbContext db, CancellationToken ct)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
        {
            return TenantNotFound();
        }
        return TypedResults.Ok(await TenantClients.ListAsync(tenantId, db, ct));
    }

    private static async Task<Results<Ok<ApiClientSecretResponse>, ProblemHttpResult>> RotateSecret(string clientId, MemberCenterDbContext db, ApiClientRegistry registry, IOperationLog log, CancellationToken ct)
    {
        var result = await TenantClients.RotateSecretAsync(clientId, tenantId: null, db, registry, ct);
        if (result.Result is Ok<ApiClientSecretResponse> { Value: { } rotated })
        {
            // The route names the client, not its tenant; the redactor drops client_secret.
            log.ForTenant(Guid.Parse(rotated.TenantId));
            log.Describe(null, rotated);
        }
        return result;
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DisableClient(string clientId, MemberCenterDbContext db, ApiClientCache cache, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var before = await db.ApiClients.AsNoTracking().Where(c => c.ClientId == clientId && c.TenantId != null)
            .Select(c => new { c.TenantId, c.DisabledAt }).FirstOrDefaultAsync(ct);
        var result = await TenantClients.DisableAsync(clientId, tenantId: null, db, cache, clock, ct);
        if (result.Result is NoContent && before is not null)
        {
            log.ForTenant(before.TenantId);
            log.Describe(new { disabled = before.DisabledAt is not null }, new { disabled = true });
        }
        return result;
    }

    private static Ok<List<SigningKeyResponse>> ListSigningKeys(SigningKeyRing ring, TimeProvider clock)
    {
        var now = clock.GetUtcNow();
        return TypedResults.Ok(ring.Keys.Select(k => new SigningKeyResponse(k.Id, k.NotBefore, k.NotAfter,
            k.NotBefore > now ? "published" : k.NotAfter > now ? "signing" : "retired")).ToList());
    }

    /// <summary>Creates the next key; it is published at once and signs after the pre-publication delay (or now with ?immediately=true).</summary>
    private static async Task<Created<SigningKeyResponse>> RotateSigningKey(bool? immediately, SigningKeyRing ring, TimeProvider clock, CancellationToken ct)
    {
        var key = await ring.RotateAsync(immediately ?? false, ct);
        var state = key.NotBefore > clock.GetUtcNow() ? "published" : "signing";
        return TypedResults.Created("/admin/signing-keys", new SigningKeyResponse(key.Id, key.NotBefore, key.NotAfter, state));
    }

    /// <summary>
    /// Withdraws a (leaked) key: out of the JWKS at once, Send Engine refuses its tokens within its JWKS refresh interval.
    /// A new key signs at once when the revoked one was signing. Repeating it answers the same.
    /// </summary>
    private static async Task<Results<Ok<SigningKeyResponse>, ProblemHttpResult>> RevokeSigningKey(string kid, SigningKeyRing ring, CancellationToken ct)
    {
        // Key ids are certificate thumbprints (hex): anything else cannot exist, and is not sent to the database.
        var key = kid.Length <= 100 && kid.All(char.IsAsciiHexDigit) ? await ring.RevokeAsync(kid, ct) : null;
        return key is null
            ? TypedResults.Problem(statusCode: 404, title: "Signing key not found")
            : TypedResults.Ok(new SigningKeyResponse(key.Id, key.NotBefore, key.NotAfter, "revoked"));
    }

    private static TenantResponse ToResponse(Tenant t) => new(t.Id.ToString(), t.Name, t.CreatedAt);
    private static ProblemHttpResult TenantNotFound() => TypedResults.Problem(statusCode: 404, title: "Tenant not found");
}
