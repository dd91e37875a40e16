using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.Transactional;

namespace SendEngine.Features.ApiKeys;

/// <summary>GET /api/v1/api-key: lets a tenant check its X-Pigeon-Api-Key (and see its expiry) without sending mail.</summary>
public static class ApiKeyInfoApi
{
    public static IEndpointRouteBuilder MapApiKeyInfoApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/api-key", Get).RequireApiKey().WithTags("Transactional mail")
            .WithName("getApiKeyInfo").WithSummary("The application and expiry of the request's X-Pigeon-Api-Key.")
            .Produces<TransactionalErrorResponse>(StatusCodes.Status403Forbidden)
            .Produces<TransactionalErrorResponse>(StatusCodes.Status429TooManyRequests);
        return app;
    }

    private static Ok<ApiKeyInfoResponse> Get(ClaimsPrincipal user)
    {
        var keyId = user.FindFirst(ClaimNames.ApiKeyId)!.Value;
        var expiresAt = user.FindFirst(ApiKeyAuthenticationHandler.ExpiresAtClaim)?.Value is { } at ? DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture) : (DateTimeOffset?)null;
        return TypedResults.Ok(new ApiKeyInfoResponse(user.FindFirst(ClaimNames.TenantId)!.Value, user.FindFirst(ClaimNames.ApplicationId)!.Value, keyId, expiresAt));
    }
}
