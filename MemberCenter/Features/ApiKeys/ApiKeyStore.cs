using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.ApiKeys;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.ApiKeys;

/// <summary>
/// Applications and API keys of one tenant at a time, for the admin and the tenant routes alike; anything of another
/// tenant is not found. Keys are 256 random bits, so a fast SHA-256 is a safe stored form (no PBKDF2: nothing to
/// brute-force) and lets a verification find the key by an index lookup.
/// </summary>
public sealed class ApiKeyStore(MemberCenterDbContext db, TimeProvider clock, IOptions<ApiKeyOptions> options)
{
    public const int MaxExpiresInDays = 3650;
    public const int MaxOverlapHours = 720;
    private static readonly string[] Channels = ["email"];

    /// <summary>What a change answered: the value, or field errors, or not found (the application or key is not the tenant's).</summary>
    public sealed record Outcome<T>(T? Value, Dictionary<string, string[]>? Errors = null, bool NotFound = false, string? Conflict = null);

    public static string Hash(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));

    public async Task<Outcome<ApplicationResponse>> CreateApplicationAsync(Guid tenantId, CreateApplicationRequest request, CancellationToken ct)
    {
        var v = new Validation().Required("name", request.Name).MaxLength("name", request.Name, 200);
        if (!v.IsValid)
        {
            return new(null, v.Errors);
        }
        var app = new Application { Id = Guid.CreateVersion7(), TenantId = tenantId, Name = request.Name!.Trim(), CreatedAt = clock.GetUtcNow() };
        db.Add(app);
        await db.SaveChangesAsync(ct);
        return new(ToResponse(app));
    }

    public async Task<List<ApplicationResponse>> ListApplicationsAsync(Guid tenantId, CancellationToken ct) =>
        (await db.Set<Application>().AsNoTracking().Where(a => a.TenantId == tenantId && a.DeletedAt == null).OrderBy(a => a.CreatedAt).ToListAsync(ct))
        .Select(ToResponse).ToList();

    public async Task<ApplicationResponse?> GetApplicationAsync(Guid tenantId, Guid applicationId, CancellationToken ct) =>
        await FindApplicationAsync(tenantId, applicationId, ct) is { } app ? ToResponse(app) : null;

    /// <summary>Deletes the application and with it every key (they answer as deleted from now on).</summary>
    public async Task<bool> DeleteApplicationAsync(Guid tenantId, Guid applicationId, CancellationToken ct)
    {
        var app = await FindApplicationAsync(tenantId, applicationId, ct);
        if (app is null)
        {
            return false;
        }
        var now = clock.GetUtcNow();
        app.DeletedAt = now;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.SaveChangesAsync(ct);
        await db.Set<ApiKey>().Where(k => k.ApplicationId == applicationId && k.DeletedAt == null)
            .ExecuteUpdateAsync(k => k.SetProperty(x => x.DeletedAt, now), ct);
        await tx.CommitAsync(ct);
        return true;
    }

    public async Task<Outcome<ApiKeySecretResponse>> CreateKeyAsync(Guid tenantId, Guid applicationId, CreateApiKeyRequest request, CancellationToken ct)
    {
        var now = Now();
        var v = new Validation().Required("name", request.Name).MaxLength("name", request.Name, 200);
        var expiresAt = Expiry(v, request.ExpiresAt, request.ExpiresInDays, now);
        if (!v.IsValid)
        {
            return new(null, v.Errors);
        }
        if (await FindApplicationAsync(tenantId, applicationId, ct) is null)
        {
            return new(null, NotFound: true);
        }
        if (await CountKeysAsync(applicationId, ct) >= options.Value.MaxKeysPerApplication)
        {
            return new(null, Conflict: $"The application already has {options.Value.MaxKeysPerApplication} keys; delete one first.");
        }
        var (key, secret) = NewKey(tenantId, applicationId, request.Name!.Trim(), now, expiresAt);
        db.Add(key);
        await db.SaveChangesAsync(ct);
        return new(ToSecretResponse(key, secret));
    }

    public async Task<List<ApiKeyResponse>?> ListKeysAsync(Guid tenantId, Guid applicationId, CancellationToken ct)
    {
        if (await FindApplicationAsync(tenantId, applicationId, ct) is null)
        {
            return null;
        }
        var now = clock.GetUtcNow();
        var keys = await db.Set<ApiKey>().AsNoTracking().Where(k => k.ApplicationId == applicationId && k.DeletedAt == null)
            .OrderBy(k => k.CreatedAt).ToListAsync(ct);
        return keys.Select(k => ToResponse(k, now)).ToList();
    }

    public async Task<bool> DeleteKeyAsync(Guid tenantId, Guid applicationId, Guid keyId, CancellationToken ct)
    {
        var key = await FindKeyAsync(tenantId, applicationId, keyId, ct);
        if (key is null)
        {
            return false;
        }
        key.DeletedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        return true;
    }

    /// <summary>
    /// A new key with the old one's name, and the old one expiring after the overlap (or sooner, if it already would).
    /// The new key's expiry is the request's, else the old key's lifetime again, else none.
    /// </summary>
    public async Task<Outcome<ApiKeyRotationResponse>> RotateKeyAsync(Guid tenantId, Guid applicationId, Guid keyId, RotateApiKeyRequest request, CancellationToken ct)
    {
        var now = Now();
        var v = new Validation();
        var expiresAt = Expiry(v, request.ExpiresAt, request.ExpiresInDays, now);
        if (request.OverlapHours is < 0 or > MaxOverlapHours)
        {
            v.Add("overlap_hours", $"The overlap_hours must be between 0 and {MaxOverlapHours}.");
        }
        if (!v.IsValid)
        {
            return new(null, v.Errors);
        }
        var old = await FindKeyAsync(tenantId, applicationId, keyId, ct);
        if (old is null)
        {
            return new(null, NotFound: true);
        }
        if (await CountKeysAsync(applicationId, ct) >= options.Value.MaxKeysPerApplication)
        {
            return new(null, Conflict: $"The application already has {options.Value.MaxKeysPerApplication} keys; delete one first.");
        }
        if (request.ExpiresAt is null && request.ExpiresInDays is null && old.ExpiresAt is { } oldExpiry)
        {
            expiresAt = now + (oldExpiry - old.CreatedAt);
        }
        var overlap = request.OverlapHours is { } hours ? TimeSpan.FromHours(hours) : options.Value.RotationOverlap;
        if (old.ExpiresAt is null || old.ExpiresAt > now + overlap)
        {
            old.ExpiresAt = now + overlap;
        }
        var (key, secret) = NewKey(tenantId, applicationId, old.Name, now, expiresAt);
        db.Add(key);
        await db.SaveChangesAsync(ct);
        return new(new ApiKeyRotationResponse(ToSecretResponse(key, secret), ToResponse(old, now)));
    }

    /// <summary>
    /// Who the key with this hash belongs to, for Send Engine. Records the use, at most once per
    /// ApiKeys:LastUsedPrecision per key, as one conditional UPDATE that matches no row inside the interval.
    /// </summary>
    public async Task<ApiKeyVerificationResponse> VerifyAsync(string keyHash, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var found = await (from k in db.Set<ApiKey>().AsNoTracking()
                           join a in db.Set<Application>() on k.ApplicationId equals a.Id
                           where k.KeyHash == keyHash
                           select new { Key = k, AppDeleted = a.DeletedAt != null }).FirstOrDefaultAsync(ct);
        if (found is null)
        {
            return new ApiKeyVerificationResponse(ApiKeyStatuses.Unknown);
        }
        var key = found.Key;
        if (key.DeletedAt is not null || found.AppDeleted)
        {
            return new ApiKeyVerificationResponse(ApiKeyStatuses.Deleted);
        }
        if (key.ExpiresAt <= now)
        {
            return new ApiKeyVerificationResponse(ApiKeyStatuses.Expired);
        }
        var stale = now - options.Value.LastUsedPrecision;
        await db.Set<ApiKey>().Where(k => k.Id == key.Id && (k.LastUsedAt == null || k.LastUsedAt <= stale))
            .ExecuteUpdateAsync(k => k.SetProperty(x => x.LastUsedAt, now), ct);
        return new ApiKeyVerificationResponse(ApiKeyStatuses.Active, key.TenantId.ToString(), key.ApplicationId.ToString(), key.Id.ToString(), key.ExpiresAt);
    }

    private static DateTimeOffset? Expiry(Validation v, DateTimeOffset? expiresAt, int? expiresInDays, DateTimeOffset now)
    {
        if (expiresAt is not null && expiresInDays is not null)
        {
            v.Add("expires_at", "Give expires_at or expires_in_days, not both.");
            return null;
        }
        if (expiresInDays is { } days)
        {
            if (days is < 1 or > MaxExpiresInDays)
            {
                v.Add("expires_in_days", $"The expires_in_days must be between 1 and {MaxExpiresInDays}.");
                return null;
            }
            return now.AddDays(days);
        }
        if (expiresAt is { } at && (at <= now || at > now.AddDays(MaxExpiresInDays)))
        {
            v.Add("expires_at", $"The expires_at must be in the future and within {MaxExpiresInDays} days.");
            return null;
        }
        return expiresAt?.ToUniversalTime() is { } utc ? utc.AddTicks(-(utc.Ticks % 10)) : null;
    }

    // PostgreSQL keeps microseconds: times are cut to them so the answers show what is stored.
    private DateTimeOffset Now()
    {
        var now = clock.GetUtcNow();
        return now.AddTicks(-(now.Ticks % 10));
    }

    private static (ApiKey Key, string Secret) NewKey(Guid tenantId, Guid applicationId, string name, DateTimeOffset now, DateTimeOffset? expiresAt)
    {
        var secret = ApiKeyFormat.Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(ApiKeyFormat.RandomBytes));
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(),
            ApplicationId = applicationId,
            TenantId = tenantId,
            Name = name,
            Prefix = secret[..ApiKeyFormat.DisplayLength],
            KeyHash = Hash(secret),
            CreatedAt = now,
            ExpiresAt = expiresAt,
        };
        return (key, secret);
    }

    private Task<Application?> FindApplicationAsync(Guid tenantId, Guid applicationId, CancellationToken ct) =>
        db.Set<Application>().FirstOrDefaultAsync(a => a.Id == applicationId && a.TenantId == tenantId && a.DeletedAt == null, ct);

    private Task<ApiKey?> FindKeyAsync(Guid tenantId, Guid applicationId, Guid keyId, CancellationToken ct) =>
        (from k in db.Set<ApiKey>()
         join a in db.Set<Application>() on k.ApplicationId equals a.Id
         where k.Id == keyId && k.ApplicationId == applicationId && k.TenantId == tenantId && k.DeletedAt == null && a.DeletedAt == null
         select k).FirstOrDefaultAsync(ct);

    private Task<int> CountKeysAsync(Guid applicationId, CancellationToken ct) =>
        db.Set<ApiKey>().CountAsync(k => k.ApplicationId == applicationId && k.DeletedAt == null, ct);

    private static ApplicationResponse ToResponse(Application a) => new(a.Id.ToString(), a.TenantId.ToString(), a.Name, Channels, a.CreatedAt);

    private static ApiKeyResponse ToResponse(ApiKey k, DateTimeOffset now) => new(
        k.Id.ToString(), k.ApplicationId.ToString(), k.Name, k.Prefix,
        k.DeletedAt is not null ? ApiKeyStatuses.Deleted : k.ExpiresAt <= now ? ApiKeyStatuses.Expired : ApiKeyStatuses.Active,
        k.CreatedAt, k.ExpiresAt, k.LastUsedAt);

    private static ApiKeySecretResponse ToSecretResponse(ApiKey k, string secret) =>
        new(k.Id.ToString(), k.ApplicationId.ToString(), k.Name, k.Prefix, secret, k.CreatedAt, k.ExpiresAt);
}
