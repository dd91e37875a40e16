using System.Security.Claims;
using Newsletter.Contracts;

namespace Newsletter.ServiceDefaults;

/// <summary>The tenant_id claim of a Member Center access token, as both services read it.</summary>
public static class TenantClaims
{
    /// <summary>True when the principal carries a well-formed tenant_id (what tenant policies require).</summary>
    public static bool HasTenant(this ClaimsPrincipal user) => Guid.TryParse(user.FindFirst(ClaimNames.TenantId)?.Value, out _);

    /// <summary>The caller's tenant; only called behind a tenant policy, which guarantees the claim.</summary>
    public static Guid TenantId(this ClaimsPrincipal user) => Guid.Parse(user.FindFirst(ClaimNames.TenantId)!.Value);

    /// <summary>The application of the caller's X-Pigeon-Api-Key; only called behind Send Engine's API-key scheme.</summary>
    public static Guid ApplicationId(this ClaimsPrincipal user) => Guid.Parse(user.FindFirst(ClaimNames.ApplicationId)!.Value);
}
