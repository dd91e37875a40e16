using System.Collections.Immutable;
using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Features.People;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace MemberCenter.Features.Auth;

/// <summary>
/// POST /oauth/token. OpenIddict has already authenticated the client (secret, grant type) when this runs;
/// here the client's usage decides its scopes, audience and tenant claim.
/// </summary>
public static class TokenEndpoint
{
    public static IEndpointRouteBuilder MapTokenEndpoint(this IEndpointRouteBuilder app)
    {
        // OpenIddict reads the form and writes the answer; the metadata only describes them to Swagger.
        app.MapPost("/oauth/token", Exchange)
            .WithTags("OAuth")
            .WithName("issueToken")
            .WithSummary("Issue an access token (client_credentials, or authorization_code with PKCE and refresh_token for the console; client_secret_basic or client_secret_post)")
            .Accepts<TokenRequestForm>("application/x-www-form-urlencoded")
            .Produces<TokenResponse>()
            .Produces<OAuthErrorResponse>(StatusCodes.Status400BadRequest)
            .Produces<OAuthErrorResponse>(StatusCodes.Status401Unauthorized)
            .Produces<OAuthErrorResponse>(StatusCodes.Status429TooManyRequests);
        app.MapGet("/.well-known/openid-configuration", NotReached)
            .WithTags("OAuth").WithName("getOpenIdConfiguration").WithSummary("Discovery document (RFC 8414): issuer, token endpoint, jwks_uri")
            .Produces(StatusCodes.Status200OK, contentType: "application/json");
        app.MapGet("/.well-known/jwks", NotReached)
            .WithTags("OAuth").WithName("getJwks").WithSummary("The public signing keys (RFC 7517) to verify access tokens with")
            .Produces(StatusCodes.Status200OK, contentType: "application/json");
        return app;
    }

    private static async Task<IResult> Exchange(HttpContext http, MemberCenterDbContext db, ApiClientCache clients, IOptions<AuthOptions> auth, CancellationToken ct)
    {
        var request = http.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenIddict server request cannot be retrieved.");
        if (request.IsAuthorizationCodeGrantType() || request.IsRefreshTokenGrantType())
        {
            return await ExchangeForPersonAsync(http, ct);
        }
        if (!request.IsClientCredentialsGrantType())
        {
            return Reject(Errors.UnsupportedGrantType, "The grant must be client_credentials, authorization_code or refresh_token.");
        }

        var client = request.ClientId is null ? null : await clients.GetAsync(request.ClientId, db, ct);
        if (client is null || client.Disabled)
        {
            return Reject(Errors.InvalidClient, "The client is disabled or unknown.");
        }

        var allowed = ClientUsagePolicy.ScopesOf(client.Usage);
        var requested = request.GetScopes();
        var denied = requested.Where(s => !allowed.Contains(s)).ToArray();
        if (denied.Length > 0)
        {
            return Reject(Errors.InvalidScope, $"The client's usage '{client.Usage}' does not allow: {string.Join(' ', denied)}.");
        }
        var granted = requested.IsEmpty ? allowed.ToImmutableArray() : requested;

        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, client.ClientId);
        if (client.TenantId is { } tenantId)
        {
            identity.SetClaim(ClaimNames.TenantId, tenantId.ToString());
        }
        identity.SetScopes(granted);
        identity.SetResources(ClientUsagePolicy.AudiencesOf(client.Usage, auth.Value));
        identity.SetDestinations(static _ => [Destinations.AccessToken]);

        return Results.SignIn(new ClaimsPrincipal(identity), authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>
    /// A code or refresh token (OpenIddict has checked it, its client and the PKCE verifier): the person's token is
    /// built again from the current account and membership, so a removed member or a locked account gets no more.
    /// </summary>
    private static async Task<IResult> ExchangeForPersonAsync(HttpContext http, CancellationToken ct)
    {
        var result = await http.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
        var previous = result.Principal;
        var users = http.RequestServices.GetRequiredService<UserManager<Person>>();
        var user = previous?.GetClaim(Claims.Subject) is { } sub ? await users.FindByIdAsync(sub) : null;
        if (previous is null || user is null || await users.IsLockedOutAsync(user))
        {
            return Reject(Errors.InvalidGrant, "The account is no longer allowed to sign in.");
        }
        var tokens = http.RequestServices.GetRequiredService<PersonTokens>();
        var outcome = await tokens.CreateAsync(user, previous.GetClaim(ClaimNames.TenantId), previous.GetScopes(), ct);
        return outcome.Principal is null
            ? Reject(Errors.InvalidGrant, outcome.Description!)
            : Results.SignIn(outcome.Principal, authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    // OpenIddict answers these itself before routing; mapped so that Swagger lists them.
    private static NotFound NotReached() => TypedResults.NotFound();

    private static IResult Reject(string error, string description) => Results.Forbid(
        authenticationSchemes: [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme],
        properties: new AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }));
}
