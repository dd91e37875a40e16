using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Newsletter.Contracts;

namespace NewsletterConsole.Auth;

/// <summary>
/// The signed-in person as the console sees them: the claims of their current access token (tenant, role, scopes),
/// which is what the services will enforce. Pages use them only to hide controls.
/// </summary>
public static class ConsoleClaims
{
    public const string AuthenticationType = "console";
    public const string Name = "name";
    public const string Email = "email";
    public const string Subject = "sub";
    public const string Role = "role";

    /// <summary>
    /// A principal from the access token Member Center just issued over the back channel. It is read, not validated:
    /// the console received it from the token endpoint itself, and every service validates it again on each call.
    /// </summary>
    public static ClaimsPrincipal FromAccessToken(string accessToken)
    {
        var jwt = new JsonWebToken(accessToken);
        var identity = new ClaimsIdentity(AuthenticationType, Name, Role);
        foreach (var type in new[] { Subject, Name, Email, ClaimNames.TenantId, Role, ClaimNames.Scope })
        {
            foreach (var claim in jwt.Claims.Where(c => c.Type == type))
            {
                identity.AddClaim(new Claim(type, claim.Value));
            }
        }
        if (identity.FindFirst(Name) is null && identity.FindFirst(Email) is { } email)
        {
            identity.AddClaim(new Claim(Name, email.Value));
        }
        return new ClaimsPrincipal(identity);
    }

    public static bool HasScope(this ClaimsPrincipal user, string scope) =>
        user.FindAll(ClaimNames.Scope).Any(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(scope, StringComparer.Ordinal));

    public static string? TenantId(this ClaimsPrincipal user) => user.FindFirst(ClaimNames.TenantId)?.Value;

    public static string? RoleName(this ClaimsPrincipal user) => user.FindFirst(Role)?.Value;

    public static string DisplayName(this ClaimsPrincipal user) =>
        user.FindFirst(Name)?.Value ?? user.FindFirst(Email)?.Value ?? user.FindFirst(Subject)?.Value ?? "";
}
