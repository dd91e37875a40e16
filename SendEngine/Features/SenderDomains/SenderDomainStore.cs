using System.ComponentModel.DataAnnotations;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.SenderDomains;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Data;

namespace SendEngine.Features.SenderDomains;

public sealed class SenderDomainOptions
{
    public const string Section = "SenderDomains";

    [Range(1, 10_000)]
    public int MaxPerTenant { get; set; } = 100;

    /// <summary>
    /// How long a tenant's domain set is reused by <see cref="SenderDomainStore.IsRegisteredAsync"/>. Changes through
    /// this process apply at once; through another replica, within this time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>A tenant's sender domains, and the check the transactional API makes on each from_email.</summary>
public sealed class SenderDomainStore(SendEngineDbContext db, IMemoryCache cache, IOptions<SenderDomainOptions> options, TimeProvider clock)
{
    public enum AddResult { Created, Existing, Invalid, TooMany }

    /// <summary>
    /// Whether <paramref name="fromEmail"/>'s domain is one the tenant registered: exact host match (a subdomain is
    /// registered on its own), case-insensitive, an internationalised domain compared in punycode. Any status counts
    /// while DNS verification does not exist. A malformed address is not registered.
    /// </summary>
    public async Task<bool> IsRegisteredAsync(Guid tenantId, string? fromEmail, CancellationToken ct)
    {
        var at = fromEmail?.LastIndexOf('@') ?? -1;
        if (at < 0 || !EmailAddresses.TryNormalizeDomain(fromEmail![(at + 1)..].Trim(), out var domain, out _))
        {
            return false;
        }
        var key = CacheKey(tenantId);
        if (!cache.TryGetValue(key, out HashSet<string>? domains))
        {
            domains = (await db.Set<SenderDomain>().AsNoTracking().Where(d => d.TenantId == tenantId).Select(d => d.Domain).ToListAsync(ct))
                .ToHashSet(StringComparer.Ordinal);
            cache.Set(key, domains, options.Value.CacheDuration);
        }
        return domains!.Contains(domain);
    }

    public async Task<List<SenderDomainResponse>> ListAsync(Guid tenantId, CancellationToken ct) =>
        (await db.Set<SenderDomain>().AsNoTracking().Where(d => d.TenantId == tenantId).OrderBy(d => d.Domain).ToListAsync(ct)).Select(ToResponse).ToList();

    public async Task<(AddResult Result, SenderDomainResponse? Domain, string? Error)> AddAsync(Guid tenantId, string? input, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(input))
        {
            return (AddResult.Invalid, null, "The domain field is required.");
        }
        if (!EmailAddresses.TryNormalizeDomain(input.Trim(), out var domain, out var error))
        {
            return (AddResult.Invalid, null, error);
        }
        var existing = await db.Set<SenderDomain>().AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenantId && d.Domain == domain, ct);
        if (existing is not null)
        {
            return (AddResult.Existing, ToResponse(existing), null);
        }
        if (await db.Set<SenderDomain>().CountAsync(d => d.TenantId == tenantId, ct) >= options.Value.MaxPerTenant)
        {
            return (AddResult.TooMany, null, $"A tenant may register at most {options.Value.MaxPerTenant} sender domains.");
        }
        var now = clock.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % 10));
        // One statement decides who creates the row: two concurrent registrations both succeed.
        var inserted = await db.Database.ExecuteSqlAsync($"""
            INSERT INTO sender_domains (tenant_id, domain, status, created_at) VALUES ({tenantId}, {domain}, {SenderDomainStatuses.Unverified}, {now})
            ON CONFLICT (tenant_id, domain) DO NOTHING
            """, ct);
        cache.Remove(CacheKey(tenantId));
        var row = await db.Set<SenderDomain>().AsNoTracking().FirstAsync(d => d.TenantId == tenantId && d.Domain == domain, ct);
        return (inserted == 1 ? AddResult.Created : AddResult.Existing, ToResponse(row), null);
    }

    /// <summary>False when the tenant has no such domain (or the input is not a host name).</summary>
    public async Task<bool> RemoveAsync(Guid tenantId, string input, CancellationToken ct)
    {
        if (!EmailAddresses.TryNormalizeDomain(input.Trim(), out var domain, out _))
        {
            return false;
        }
        var removed = await db.Set<SenderDomain>().Where(d => d.TenantId == tenantId && d.Domain == domain).ExecuteDeleteAsync(ct);
        cache.Remove(CacheKey(tenantId));
        return removed > 0;
    }

    private static string CacheKey(Guid tenantId) => "sender-domains:" + tenantId.ToString("N");

    private static SenderDomainResponse ToResponse(SenderDomain d) => new(d.Domain, d.TenantId.ToString(), d.Status, d.CreatedAt);
}
