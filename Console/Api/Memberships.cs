using System.Text.Json;
using Microsoft.Extensions.Caching.Memory;
using NewsletterConsole.Auth;

namespace NewsletterConsole.Api;

public sealed record Membership(string TenantId, string TenantName, string Role);

/// <summary>
/// The signed-in person's tenants for the switcher, from Member Center's GET /api/me, kept a minute per person and
/// tenant so that each page does not ask again.
/// </summary>
public sealed class Memberships(MemberCenterApi mc, IMemoryCache cache, IHttpContextAccessor accessor)
{
    public async Task<IReadOnlyList<Membership>> GetAsync(CancellationToken cancellationToken)
    {
        var user = accessor.HttpContext?.User;
        var key = $"me:{user?.FindFirst(ConsoleClaims.Subject)?.Value}:{user?.TenantId()}";
        if (cache.TryGetValue(key, out IReadOnlyList<Membership>? cached) && cached is not null)
        {
            return cached;
        }
        IReadOnlyList<Membership> memberships;
        try
        {
            var me = await mc.GetAsync<JsonElement>("api/me", cancellationToken);
            memberships = Parse(me);
        }
        catch (ApiException)
        {
            // The switcher is a convenience: a page still renders with the current tenant alone.
            memberships = [];
        }
        cache.Set(key, memberships, TimeSpan.FromMinutes(1));
        return memberships;
    }

    private static List<Membership> Parse(JsonElement me)
    {
        var list = new List<Membership>();
        if (me.ValueKind != JsonValueKind.Object || !me.TryGetProperty("memberships", out var items) || items.ValueKind != JsonValueKind.Array)
        {
            return list;
        }
        foreach (var m in items.EnumerateArray())
        {
            var tenantId = Text(m, "tenant_id");
            if (tenantId is null)
            {
                continue;
            }
            list.Add(new Membership(tenantId, Text(m, "tenant_name") ?? Text(m, "name") ?? tenantId, Text(m, "role") ?? ""));
        }
        return list;
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
