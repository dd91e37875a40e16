using MemberCenter.Data;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Primitives;
using Newsletter.Contracts;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace MemberCenter.Features.People;

/// <summary>
/// GET/POST /connect/authorize (authorization code + PKCE; OpenIddict has validated the client, redirect_uri and
/// code_challenge before this runs) and /connect/logout. The person is whoever holds Member Center's sign-in cookie;
/// the extra parameter tenant_id picks the tenant of the token.
/// </summary>
public static class AuthorizeEndpoint
{
    public const string TenantParameter = "tenant_id";

    public static IEndpointRouteBuilder MapAuthorizeEndpoint(this IEndpointRouteBuilder app)
    {
        app.MapGet("/connect/authorize", Authorize).WithTags("OAuth").WithName("authorize")
            .WithSummary("Authorization endpoint (code flow, PKCE S256 required); tenant_id picks the tenant, prompt=none switches without a page")
            .Produces(StatusCodes.Status302Found);
        app.MapPost("/connect/authorize", Authorize).WithTags("OAuth").WithName("authorizeForm")
            .WithSummary("Authorization endpoint, form-encoded parameters").Produces(StatusCodes.Status302Found);
        app.MapGet("/connect/logout", Logout).WithTags("OAuth").WithName("endSession")
            .WithSummary("End-session endpoint: signs the person out and returns to post_logout_redirect_uri").Produces(StatusCodes.Status302Found);
        app.MapPost("/connect/logout", Logout).WithTags("OAuth").WithName("endSessionForm")
            .WithSummary("End-session endpoint, form-encoded parameters").Produces(StatusCodes.Status302Found);
        return app;
    }

    private static async Task<IResult> Authorize(HttpContext http, UserManager<Person> users, PersonTokens tokens, CancellationToken ct)
    {
        var request = http.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenIddict server request cannot be retrieved.");
        var cookie = await http.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        var user = cookie.Succeeded ? await users.GetUserAsync(cookie.Principal!) : null;
        if (user is not null && request.HasPromptValue(PromptValues.Login))
        {
            await http.SignOutAsync(IdentityConstants.ApplicationScheme);
            user = null;
        }
        if (user is null)
        {
            if (request.HasPromptValue(PromptValues.None))
            {
                return Reject(Errors.LoginRequired, "The person is not signed in.");
            }
            // Back here after the login page, without prompt (a prompt=login would send the person round again).
            var source = http.Request.HasFormContentType ? (IEnumerable<KeyValuePair<string, StringValues>>)http.Request.Form : http.Request.Query;
            var parameters = source.Where(p => p.Key != Parameters.Prompt).ToList();
            return Results.Challenge(new AuthenticationProperties { RedirectUri = http.Request.PathBase + http.Request.Path + QueryString.Create(parameters) },
                [IdentityConstants.ApplicationScheme]);
        }

        var outcome = await tokens.CreateAsync(user, request.GetParameter(TenantParameter)?.ToString(), request.GetScopes(), ct);
        return outcome.Principal is null
            ? Reject(outcome.Error!, outcome.Description!)
            : Results.SignIn(outcome.Principal, authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static async Task<IResult> Logout(HttpContext http, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        await http.SignOutAsync(IdentityConstants.ApplicationScheme);
        // OpenIddict redirects to the client's registered post_logout_redirect_uri when one was given.
        return Results.SignOut(new AuthenticationProperties { RedirectUri = "/account/login" }, [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
    }

    internal static ForbidHttpResult Reject(string error, string description) => TypedResults.Forbid(
        authenticationSchemes: [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme],
        properties: new AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }));
}
