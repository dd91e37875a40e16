using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.SenderDomains;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Data;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// A tenant's sender domains: registration (with its first DKIM key), key rotation, DNS verification, and the check
/// the send paths make on a from address (<see cref="MaySendAsync"/>).
/// </summary>
public sealed class SenderDomainStore(
    SendEngineDbContext db,
    IMemoryCache cache,
    IOptions<SenderDomainOptions> options,
    DkimKeyProtector protector,
    SenderDomainDns dns,
    TimeProvider clock)
{
    public enum AddResult { Created, Existing, Invalid, TooMany }

    private static readonly JsonSerializerOptions CheckJson = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Whether <paramref name="fromEmail"/>'s domain is one the tenant registered (any status): exact host match (a
    /// subdomain is registered on its own), case-insensitive, an internationalised domain compared in punycode. A
    /// malformed address is not registered.
    /// </summary>
    public async Task<bool> IsRegisteredAsync(Guid tenantId, string? fromEmail, CancellationToken ct) =>
        DomainOf(fromEmail) is { } domain && (await StatusesAsync(tenantId, ct)).ContainsKey(domain);

    /// <summary>
    /// Whether the tenant may send transactional mail from <paramref name="fromEmail"/>: its domain is registered and
    /// verified, or registered while <see cref="SenderDomainOptions.AllowUnverified"/> is on.
    /// </summary>
    public async Task<bool> MaySendAsync(Guid tenantId, string? fromEmail, CancellationToken ct) =>
        DomainOf(fromEmail) is { } domain && (await StatusesAsync(tenantId, ct)).TryGetValue(domain, out var status)
        && (status == SenderDomainStatuses.Verified || options.Value.AllowUnverified == true);

    /// <summary>Whether the tenant's domain of <paramref name="fromEmail"/> is verified (bulk jobs need that, unless AllowUnverified).</summary>
    public async Task<bool> IsVerifiedAsync(Guid tenantId, string? fromEmail, CancellationToken ct) =>
        DomainOf(fromEmail) is { } domain && (await StatusesAsync(tenantId, ct)).GetValueOrDefault(domain) == SenderDomainStatuses.Verified;

    /// <summary>The normalised domain of an address, or null when it has none.</summary>
    public static string? DomainOf(string? email)
    {
        var at = email?.LastIndexOf('@') ?? -1;
        return at >= 0 && EmailAddresses.TryNormalizeDomain(email![(at + 1)..].Trim().TrimEnd('>'), out var domain, out _) ? domain : null;
    }

    private async Task<Dictionary<string, string>> StatusesAsync(Guid tenantId, CancellationToken ct)
    {
        var key = CacheKey(tenantId);
        if (!cache.TryGetValue(key, out Dictionary<string, string>? statuses))
        {
            statuses = await db.Set<SenderDomain>().AsNoTracking().Where(d => d.TenantId == tenantId)
                .ToDictionaryAsync(d => d.Domain, d => d.Status, StringComparer.Ordinal, ct);
            if (options.Value.CacheDuration > TimeSpan.Zero)
            {
                cache.Set(key, statuses, options.Value.CacheDuration);
            }
        }
        return statuses!;
    }

    public async Task<List<SenderDomainResponse>> ListAsync(Guid tenantId, CancellationToken ct)
    {
        var domains = await db.Set<SenderDomain>().AsNoTracking().Where(d => d.TenantId == tenantId).OrderBy(d => d.Domain).ToListAsync(ct);
        var keys = (await PublishedKeysQuery(tenantId, null).ToListAsync(ct)).ToLookup(k => k.Domain, StringComparer.Ordinal);
        return domains.Select(d => ToResponse(d, Ordered(keys[d.Domain]))).ToList();
    }

    /// <summary>Null when the tenant has no such domain (or the input is not a host name).</summary>
    public async Task<SenderDomainResponse?> GetAsync(Guid tenantId, string input, CancellationToken ct)
    {
        if (!EmailAddresses.TryNormalizeDomain(input.Trim(), out var domain, out _))
        {
            return null;
        }
        var row = await db.Set<SenderDomain>().AsNoTracking().FirstOrDefaultAsync(d => d.TenantId == tenantId && d.Domain == domain, ct);
        return row is null ? null : ToResponse(row, Ordered(await PublishedKeysQuery(tenantId, domain).ToListAsync(ct)));
    }

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
        if (await db.Set<SenderDomain>().AsNoTracking().AnyAsync(d => d.TenantId == tenantId && d.Domain == domain, ct))
        {
            return (AddResult.Existing, await GetAsync(tenantId, domain, ct), null);
        }
        if (await db.Set<SenderDomain>().CountAsync(d => d.TenantId == tenantId, ct) >= options.Value.MaxPerTenant)
        {
            return (AddResult.TooMany, null, $"A tenant may register at most {options.Value.MaxPerTenant} sender domains.");
        }
        var now = Now();
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            // One statement decides who creates the row: two concurrent registrations both succeed, one key is made.
            var inserted = await db.Database.ExecuteSqlAsync($"""
                INSERT INTO sender_domains (tenant_id, domain, status, created_at) VALUES ({tenantId}, {domain}, {SenderDomainStatuses.Unverified}, {now})
                ON CONFLICT (tenant_id, domain) DO NOTHING
                """, ct);
            if (inserted == 1)
            {
                await AddKeyAsync(tenantId, domain, now, ct);
            }
            await tx.CommitAsync(ct);
            cache.Remove(CacheKey(tenantId));
            return (inserted == 1 ? AddResult.Created : AddResult.Existing, await GetAsync(tenantId, domain, ct), null);
        }
    }

    /// <summary>
    /// A new key signs from now on; the previous one is superseded and stays published and checked for
    /// <see cref="SenderDomainOptions.RotationOverlap"/>. Null when the tenant has no such domain.
    /// </summary>
    public async Task<SenderDomainResponse?> RotateAsync(Guid tenantId, string input, CancellationToken ct)
    {
        if (!EmailAddresses.TryNormalizeDomain(input.Trim(), out var domain, out _))
        {
            return null;
        }
        var now = Now();
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            // The domain row's lock orders concurrent rotations: each supersedes exactly the key before it.
            var locked = await db.Database.SqlQuery<int>($"SELECT 1 AS \"Value\" FROM sender_domains WHERE tenant_id = {tenantId} AND domain = {domain} FOR UPDATE")
                .ToListAsync(ct);
            if (locked.Count == 0)
            {
                return null;
            }
            await db.Set<SenderDomainKey>().Where(k => k.TenantId == tenantId && k.Domain == domain && k.SupersededAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(k => k.SupersededAt, now), ct);
            await AddKeyAsync(tenantId, domain, now, ct);
            await tx.CommitAsync(ct);
        }
        return await GetAsync(tenantId, domain, ct);
    }

    /// <summary>Looks the domain's records up now and stores the outcome; null when the tenant has no such domain.</summary>
    public async Task<SenderDomainResponse?> VerifyAsync(Guid tenantId, string input, CancellationToken ct)
    {
        if (!EmailAddresses.TryNormalizeDomain(input.Trim(), out var domain, out _))
        {
            return null;
        }
        var row = await db.Set<SenderDomain>().FirstOrDefaultAsync(d => d.TenantId == tenantId && d.Domain == domain, ct);
        if (row is null)
        {
            return null;
        }
        var keys = Ordered(await PublishedKeysQuery(tenantId, domain).ToListAsync(ct));
        if (!keys.Any(k => k.SupersededAt is null))
        {
            // A domain registered before DKIM keys existed gets its first one here.
            await AddKeyAsync(tenantId, domain, Now(), ct);
            keys = Ordered(await PublishedKeysQuery(tenantId, domain).ToListAsync(ct));
        }
        var expected = SenderDomainRecords.Expected(domain, keys, options.Value);
        var checks = await dns.CheckAsync(expected, ct);
        var now = Now();
        var required = expected.Where(r => r.Required).Select(r => checks[r.Key].Status).ToList();
        if (!required.Contains(DnsRecordStatuses.Error))
        {
            // A lookup that failed (resolver down) decides nothing: the status stays as it was until a real answer.
            var verified = required.All(s => s == DnsRecordStatuses.Ok) && keys.Any(k => k.SupersededAt is null);
            if (verified && row.Status != SenderDomainStatuses.Verified)
            {
                row.VerifiedAt = now;
            }
            row.Status = verified ? SenderDomainStatuses.Verified : SenderDomainStatuses.Failed;
        }
        row.LastCheckedAt = now;
        row.CheckResults = JsonSerializer.Serialize(checks, CheckJson);
        await db.SaveChangesAsync(ct);
        cache.Remove(CacheKey(tenantId));
        return ToResponse(row, keys);
    }

    /// <summary>False when the tenant has no such domain (or the input is not a host name). Its keys go with it.</summary>
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

    /// <summary>Deletes keys whose overlap after a rotation has passed; returns how many.</summary>
    public Task<int> RetireKeysAsync(CancellationToken ct)
    {
        var before = Now() - options.Value.RotationOverlap;
        return db.Set<SenderDomainKey>().Where(k => k.SupersededAt != null && k.SupersededAt < before).ExecuteDeleteAsync(ct);
    }

    /// <summary>The domains the daily re-check looks at: not checked within <see cref="SenderDomainOptions.RecheckAfter"/>.</summary>
    public Task<List<(Guid TenantId, string Domain)>> DueForRecheckAsync(CancellationToken ct)
    {
        var before = Now() - options.Value.RecheckAfter;
        return db.Set<SenderDomain>().AsNoTracking().Where(d => d.LastCheckedAt == null || d.LastCheckedAt < before)
            .OrderBy(d => d.LastCheckedAt).Select(d => new ValueTuple<Guid, string>(d.TenantId, d.Domain)).ToListAsync(ct);
    }

    private async Task AddKeyAsync(Guid tenantId, string domain, DateTimeOffset now, CancellationToken ct)
    {
        var used = await db.Set<SenderDomainKey>().AsNoTracking().Where(k => k.TenantId == tenantId && k.Domain == domain).Select(k => k.Selector).ToListAsync(ct);
        // nl + the UTC date, so a DNS zone shows when each key was made; a second key on the same day gets a letter.
        var stem = "nl" + now.UtcDateTime.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        var selector = stem;
        for (var c = 'b'; used.Contains(selector) && c <= 'z'; c++)
        {
            selector = stem + c;
        }
        if (used.Contains(selector))
        {
            selector = stem + "-" + Guid.NewGuid().ToString("N")[..8];
        }
        var (privateKey, publicKey) = DkimKeyProtector.NewKeyPair();
        var id = Guid.CreateVersion7(now);
        db.Set<SenderDomainKey>().Add(new SenderDomainKey
        {
            Id = id, TenantId = tenantId, Domain = domain, Selector = selector, PublicKey = publicKey,
            PrivateKey = protector.Protect(id, privateKey), CreatedAt = now,
        });
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(privateKey);
        await db.SaveChangesAsync(ct);
    }

    /// <summary>The keys still published: the current one and those superseded within the overlap.</summary>
    private IQueryable<SenderDomainKey> PublishedKeysQuery(Guid tenantId, string? domain)
    {
        var since = Now() - options.Value.RotationOverlap;
        var q = db.Set<SenderDomainKey>().AsNoTracking().Where(k => k.TenantId == tenantId && (k.SupersededAt == null || k.SupersededAt >= since));
        return domain is null ? q : q.Where(k => k.Domain == domain);
    }

    private static List<SenderDomainKey> Ordered(IEnumerable<SenderDomainKey> keys) =>
        keys.OrderBy(k => k.SupersededAt is null ? 0 : 1).ThenByDescending(k => k.CreatedAt).ToList();

    private DateTimeOffset Now()
    {
        var now = clock.GetUtcNow();
        return now.AddTicks(-(now.Ticks % 10)); // PostgreSQL keeps microseconds
    }

    private static string CacheKey(Guid tenantId) => "sender-domains:" + tenantId.ToString("N");

    private SenderDomainResponse ToResponse(SenderDomain d, List<SenderDomainKey> keys)
    {
        var o = options.Value;
        var checks = d.CheckResults is { } json ? JsonSerializer.Deserialize<Dictionary<string, StoredCheck>>(json, CheckJson) ?? [] : [];
        var records = SenderDomainRecords.Expected(d.Domain, keys, o).Select(r => checks.TryGetValue(r.Key, out var c)
                ? new SenderDomainDnsRecord(r.Purpose, r.Type, r.Name, r.Value, r.Required, c.Status, c.Found, c.Detail, r.Selector, r.RetiresAt)
                : new SenderDomainDnsRecord(r.Purpose, r.Type, r.Name, r.Value, r.Required, DnsRecordStatuses.Unchecked, [], null, r.Selector, r.RetiresAt))
            .ToList();
        return new SenderDomainResponse(d.Domain, d.TenantId.ToString(), d.Status, d.CreatedAt, d.LastCheckedAt, d.VerifiedAt,
            keys.FirstOrDefault(k => k.SupersededAt is null)?.Selector, SenderDomainRecords.ReturnPathDomain(d.Domain, o), records);
    }
}
