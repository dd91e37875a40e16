using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;

namespace MemberCenter.Features.Auth;

/// <summary>
/// The token endpoint's view of a client (tenant, usage, disabled), cached briefly: it is read on every token request
/// and changes rarely. This replica evicts on disable; other replicas see a disable within <see cref="Lifetime"/>.
/// </summary>
public sealed class ApiClientCache(IMemoryCache cache)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    public sealed record Entry(string ClientId, Guid? TenantId, string Usage, bool Disabled);

    public async Task<Entry?> GetAsync(string clientId, MemberCenterDbContext db, CancellationToken ct)
    {
        var key = Key(clientId);
        if (cache.TryGetValue(key, out Entry? entry))
        {
            return entry;
        }
        entry = await db.ApiClients.AsNoTracking().Where(c => c.ClientId == clientId)
            .Select(c => new Entry(c.ClientId, c.TenantId, c.Usage, c.DisabledAt != null)).FirstOrDefaultAsync(ct);
        if (entry is not null)
        {
            cache.Set(key, entry, new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = Lifetime });
        }
        return entry;
    }

    public void Evict(string clientId) => cache.Remove(Key(clientId));

    private static string Key(string clientId) => "api-client:" + clientId;
}
