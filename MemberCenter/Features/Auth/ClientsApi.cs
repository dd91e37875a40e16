using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Extensions;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Auth;

/// <summary>The tenant's own OAuth API clients (scope newsletter:clients, owners): what the admin API does, for one tenant.</summary>
public static class ClientsApi
{
    public static IEndpointRouteBuilder MapClientsApi(this IEndpointRouteBuilder app)
    {
        var clients = app.MapGroup("/api/clients").WithTags("Clients").RequireAuthorization(Policies.Clients);
        clients.MapGet("/", async (ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct) => TypedResults.Ok(await TenantClients.ListAsync(user.TenantId(), db, ct)))
            .WithName("listClients").WithSummary("The tenant's API clients, without secrets.");
        clients.MapPost("/", (CreateClientRequest request, ClaimsPrincipal user, MemberCenterDbContext db, ApiClientRegistry registry, CancellationToken ct) =>
                TenantClients.CreateAsync(user.TenantId(), request, "/api/clients", db, registry, ct))
            .WithName("createClient").WithSummary("Create an API client (send_api or tenant_api); the secret is shown once.");
        clients.MapPost("/{clientId}/rotate-secret", (string clientId, ClaimsPrincipal user, MemberCenterDbContext db, ApiClientRegistry registry, CancellationToken ct) =>
                TenantClients.RotateSecretAsync(clientId, user.TenantId(), db, registry, ct))
            .WithName("rotateOwnClientSecret").WithSummary("Issue a new secret for one of the tenant's clients, shown once; the old one stops working.");
        clients.MapPost("/{clientId}/disable", (string clientId, ClaimsPrincipal user, MemberCenterDbContext db, ApiClientCache cache, TimeProvider clock, CancellationToken ct) =>
                TenantClients.DisableAsync(clientId, user.TenantId(), db, cache, clock, ct))
            .WithName("disableOwnClient").WithSummary("Disable one of the tenant's clients: it gets no more tokens.");
        return app;
    }
}
