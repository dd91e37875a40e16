using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using OpenIddict.Core;
using OpenIddict.EntityFrameworkCore.Models;

namespace MemberCenter.Features.Auth;

/// <summary>
/// Remembers successful client-secret checks. PBKDF2 costs ~4 ms of CPU per token request, more than everything else
/// together. The cache key holds the stored hash, so a rotated secret (a new hash) can never match an old entry, on any
/// replica; only successes are cached, so a wrong secret always pays the full PBKDF2 price (and is counted by
/// <see cref="ClientAuthenticationThrottle"/> before it does).
/// </summary>
public sealed class CachingApplicationManager(
    IOpenIddictApplicationCache<OpenIddictEntityFrameworkCoreApplication> cache,
    ILogger<OpenIddictApplicationManager<OpenIddictEntityFrameworkCoreApplication>> logger,
    IOptionsMonitor<OpenIddictCoreOptions> options,
    IOpenIddictApplicationStore<OpenIddictEntityFrameworkCoreApplication> store,
    IMemoryCache verified)
    : OpenIddictApplicationManager<OpenIddictEntityFrameworkCoreApplication>(cache, logger, options, store)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    /// <summary>True when this secret was verified against the client's current hash recently: checking it costs nothing.</summary>
    public async ValueTask<bool> IsVerifiedAsync(OpenIddictEntityFrameworkCoreApplication application, string secret, CancellationToken ct)
    {
        var comparand = await Store.GetClientSecretAsync(application, ct);
        return !string.IsNullOrEmpty(comparand) && verified.TryGetValue(Key(secret, comparand), out _);
    }

    protected override async ValueTask<bool> ValidateClientSecretAsync(string secret, string comparand, CancellationToken cancellationToken = default)
    {
        var key = Key(secret, comparand);
        if (verified.TryGetValue(key, out _))
        {
            return true;
        }
        var valid = await base.ValidateClientSecretAsync(secret, comparand, cancellationToken);
        if (valid)
        {
            verified.Set(key, true, new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = Lifetime });
        }
        return valid;
    }

    private static string Key(string secret, string comparand) =>
        "client-secret:" + comparand + ":" + Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
