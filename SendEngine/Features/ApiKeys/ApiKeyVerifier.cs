using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.ApiKeys;
using SendEngine.Features.MemberCenter;

namespace SendEngine.Features.ApiKeys;

public enum ApiKeyVerdict { Valid, Missing, Invalid, Expired, Throttled, Unavailable }

/// <summary>The key's owner, as Member Center stated it.</summary>
public sealed record ApiKeyIdentity(Guid TenantId, Guid ApplicationId, Guid KeyId, DateTimeOffset? ExpiresAt);

public sealed record ApiKeyOutcome(ApiKeyVerdict Verdict, ApiKeyIdentity? Identity = null, TimeSpan? RetryAfter = null);

/// <summary>
/// Checks X-Pigeon-Api-Key values against Member Center's internal API without a round trip per request: answers
/// (valid, expired or deleted, unknown) are cached for ApiKeys:CacheDuration (≤ 30 s), concurrent checks of one key
/// share one call, and a valid key's expiry is checked on every use. Keys are cached and sent by their SHA-256 hash,
/// never as themselves. Unknown and malformed keys are counted per client address; over ApiKeys:FailedKeyLimit, keys
/// not already known valid are refused without asking Member Center (so guessing cannot load it).
/// </summary>
public sealed class ApiKeyVerifier : IDisposable
{
    private readonly IServiceProvider _services;
    private readonly IOptions<ApiKeyOptions> _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<ApiKeyVerifier> _log;
    private readonly MemoryCache _cache;
    private readonly ConcurrentDictionary<string, Lazy<Task<CachedAnswer?>>> _inFlight = new(StringComparer.Ordinal);
    private readonly PartitionedRateLimiter<string>? _failures;

    public ApiKeyVerifier(IServiceProvider services, IOptions<ApiKeyOptions> options, TimeProvider clock, ILogger<ApiKeyVerifier> log)
    {
        _services = services;
        _options = options;
        _clock = clock;
        _log = log;
        var o = options.Value;
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = o.CacheSize });
        if (o.FailedKeyLimit > 0)
        {
            _failures = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetSlidingWindowLimiter(address,
                _ => new SlidingWindowRateLimiterOptions
                {
                    PermitLimit = o.FailedKeyLimit,
                    Window = o.FailedKeyWindow,
                    SegmentsPerWindow = 6,
                    QueueLimit = 0,
                    AutoReplenishment = true,
                }));
        }
    }

    /// <summary>The lowercase hex SHA-256 of the key's UTF-8 bytes: how the key is cached, sent and stored.</summary>
    public static string Hash(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));

    public async Task<ApiKeyOutcome> VerifyAsync(string? apiKey, string clientAddress, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(apiKey))
        {
            return new ApiKeyOutcome(ApiKeyVerdict.Missing);
        }
        var hash = Hash(apiKey);
        var now = _clock.GetUtcNow();
        if (_cache.TryGetValue(hash, out CachedAnswer? known) && known!.CachedUntil > now && known.Verdict == ApiKeyVerdict.Valid)
        {
            return Answer(known, now);
        }
        if (IsThrottled(clientAddress) is { } wait)
        {
            return new ApiKeyOutcome(ApiKeyVerdict.Throttled, RetryAfter: wait);
        }
        CachedAnswer? answer;
        if (known is not null && known.CachedUntil > now)
        {
            answer = known;
        }
        else if (!IsWellFormed(apiKey))
        {
            answer = new CachedAnswer(ApiKeyVerdict.Invalid, null, DateTimeOffset.MaxValue);
        }
        else
        {
            answer = await AskAsync(hash, ct);
            if (answer is null)
            {
                return new ApiKeyOutcome(ApiKeyVerdict.Unavailable);
            }
        }
        if (answer.Verdict == ApiKeyVerdict.Invalid)
        {
            _failures?.AttemptAcquire(clientAddress, 1).Dispose();
        }
        return Answer(answer, now);
    }

    private static ApiKeyOutcome Answer(CachedAnswer answer, DateTimeOffset now) =>
        answer.Verdict == ApiKeyVerdict.Valid && answer.Identity!.ExpiresAt is { } expires && expires <= now
            ? new ApiKeyOutcome(ApiKeyVerdict.Expired)
            : new ApiKeyOutcome(answer.Verdict, answer.Identity);

    private TimeSpan? IsThrottled(string address)
    {
        if (_failures is null)
        {
            return null;
        }
        // Zero permits asks whether any are left without taking one: only failures take permits.
        using var lease = _failures.AttemptAcquire(address, 0);
        if (lease.IsAcquired)
        {
            return null;
        }
        var o = _options.Value;
        return lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.Zero
            ? retryAfter
            : o.FailedKeyWindow / 6;
    }

    private static bool IsWellFormed(string key) =>
        key.Length == ApiKeyFormat.Length && key.StartsWith(ApiKeyFormat.Prefix, StringComparison.Ordinal)
        && key.AsSpan(ApiKeyFormat.Prefix.Length).IndexOfAnyExcept("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") < 0;

    private Task<CachedAnswer?> AskAsync(string hash, CancellationToken ct)
    {
        var call = _inFlight.GetOrAdd(hash, h => new Lazy<Task<CachedAnswer?>>(() => CallMemberCenterAsync(h)));
        // The shared call runs without this request's token (other requests may wait on it); this one stops waiting
        // when it is cancelled.
        return call.Value.WaitAsync(ct);
    }

    private async Task<CachedAnswer?> CallMemberCenterAsync(string hash)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var response = await _services.GetRequiredService<MemberCenterClient>().VerifyApiKeyAsync(hash, timeout.Token);
            var until = _clock.GetUtcNow() + _options.Value.CacheDuration;
            var answer = response.Status switch
            {
                ApiKeyStatuses.Active when Guid.TryParse(response.TenantId, out var tenant) && Guid.TryParse(response.ApplicationId, out var app)
                    && Guid.TryParse(response.KeyId, out var key)
                    => new CachedAnswer(ApiKeyVerdict.Valid, new ApiKeyIdentity(tenant, app, key, response.ExpiresAt), until),
                ApiKeyStatuses.Expired or ApiKeyStatuses.Deleted => new CachedAnswer(ApiKeyVerdict.Expired, null, until),
                _ => new CachedAnswer(ApiKeyVerdict.Invalid, null, until),
            };
            _cache.Set(hash, answer, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _options.Value.CacheDuration });
            return answer;
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, CancellationToken.None))
        {
            _log.LogWarning("Member Center could not verify an API key: {Error}", ex.Message);
            return null;
        }
        finally
        {
            // After the answer is cached, so a request arriving now finds it there instead of calling again.
            _inFlight.TryRemove(hash, out _);
        }
    }

    public void Dispose()
    {
        _cache.Dispose();
        _failures?.Dispose();
    }

    /// <summary>One answer; CachedUntil is checked against TimeProvider, the cache's own expiry only frees memory.</summary>
    private sealed record CachedAnswer(ApiKeyVerdict Verdict, ApiKeyIdentity? Identity, DateTimeOffset CachedUntil);
}
