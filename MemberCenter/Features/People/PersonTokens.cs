using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Features.Auth;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace MemberCenter.Features.People;

/// <summary>
/// The principal of a person's token: the chosen tenant and the person's role in it, the role's scopes (as far as
/// requested), both services' audiences. Built at authorization and again at every code or refresh token redemption, so
/// a removed membership or a changed role takes effect at the next refresh.
/// </summary>
public sealed class PersonTokens(MemberCenterDbContext db, UserManager<Person> users, IOptions<AuthOptions> auth)
{
    public sealed record Outcome(ClaimsPrincipal? Principal, string? Error = null, string? Description = null);

    /// <param name="requestedTenant">The authorize request's tenant_id; null picks the last tenant used, else the first membership.</param>
    public async Task<Outcome> CreateAsync(Person user, string? requestedTenant, IEnumerable<string> requestedScopes, CancellationToken ct)
    {
        var isOperator = await users.IsInRoleAsync(user, PlatformRoles.Operator);
        var memberships = await db.Memberships.AsNoTracking().Where(m => m.UserId == user.Id)
            .OrderBy(m => m.CreatedAt).Select(m => new { m.TenantId, m.Role }).ToListAsync(ct);

        Guid? tenantId;
        string role;
        if (!string.IsNullOrEmpty(requestedTenant))
        {
            if (!Guid.TryParse(requestedTenant, out var wanted))
            {
                return new(null, Errors.InvalidRequest, "tenant_id is not a tenant id.");
            }
            var membership = memberships.FirstOrDefault(m => m.TenantId == wanted);
            if (isOperator && await db.Tenants.AnyAsync(t => t.Id == wanted, ct))
            {
                (tenantId, role) = (wanted, Roles.Operator);
            }
            else if (membership is not null)
            {
                (tenantId, role) = (wanted, membership.Role);
            }
            else
            {
                return new(null, Errors.AccessDenied, "The person is not a member of this tenant.");
            }
        }
        else
        {
            var last = memberships.FirstOrDefault(m => m.TenantId == user.LastTenantId) ?? memberships.FirstOrDefault();
            if (isOperator)
            {
                tenantId = user.LastTenantId is { } l && await db.Tenants.AnyAsync(t => t.Id == l, ct) ? l
                    : last?.TenantId ?? await db.Tenants.OrderBy(t => t.CreatedAt).Select(t => (Guid?)t.Id).FirstOrDefaultAsync(ct);
                role = Roles.Operator;
            }
            else if (last is not null)
            {
                (tenantId, role) = (last.TenantId, last.Role);
            }
            else
            {
                return new(null, Errors.AccessDenied, "The person is not a member of any tenant.");
            }
        }

        var allowed = RoleScopes.Of(role);
        var requested = requestedScopes.ToHashSet(StringComparer.Ordinal);
        // A request naming none of the platform's scopes gets all of the role's.
        var granted = requested.Overlaps(RoleScopes.All) ? allowed.Where(requested.Contains).ToList() : allowed.ToList();
        foreach (var standard in new[] { OpenIddictConstants.Scopes.OpenId, OpenIddictConstants.Scopes.OfflineAccess })
        {
            if (requested.Contains(standard))
            {
                granted.Add(standard);
            }
        }

        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, user.Id.ToString());
        identity.SetClaim(Claims.Email, user.Email);
        identity.SetClaim(Claims.Name, user.DisplayName ?? user.Email);
        identity.SetClaim(ClaimNames.Role, role);
        if (tenantId is { } t)
        {
            identity.SetClaim(ClaimNames.TenantId, t.ToString());
        }
        identity.SetScopes(granted);
        string[] audiences = isOperator
            ? [Audiences.MemberCenterApi, auth.Value.SendEngineAudience, Audiences.MemberCenterAdmin]
            : [Audiences.MemberCenterApi, auth.Value.SendEngineAudience];
        identity.SetResources(audiences);
        identity.SetDestinations(static claim => claim.Type is Claims.Subject or Claims.Name or Claims.Email or ClaimNames.Role or ClaimNames.TenantId
            ? [Destinations.AccessToken, Destinations.IdentityToken]
            : [Destinations.AccessToken]);

        if (tenantId is not null && user.LastTenantId != tenantId)
        {
            await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(u => u.SetProperty(p => p.LastTenantId, tenantId), ct);
        }
        return new(new ClaimsPrincipal(identity));
    }
}
