using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using MimeKit.Cryptography;
using Newsletter.Contracts.SenderDomains;
using Npgsql;
using SendEngine.Composition;
using SendEngine.Data;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// How mail from one tenant's from address is sent. <paramref name="Verified"/>: the domain is the tenant's and
/// verified, so <paramref name="Dkim"/> is its current key and <paramref name="ReturnPathDomain"/> its bounce domain
/// (VERP envelope). Otherwise the platform's global DKIM key (if configured) and the from address as envelope.
/// </summary>
public sealed record SenderIdentity(string? Domain, bool Registered, bool Verified, DkimSigner? Dkim, string? ReturnPathDomain, string? Selector);

/// <summary>
/// Resolves a <see cref="SenderIdentity"/> once per job run or transactional batch, never per message: the domain's
/// status and current key are cached for <see cref="SenderDomainOptions.CacheDuration"/>, and the parsed
/// <see cref="DkimSigner"/> per key for an hour (the key never changes; a rotation makes a new one).
/// </summary>
public sealed partial class SenderSigning(
    NpgsqlDataSource db,
    IMemoryCache cache,
    DkimKeyProtector protector,
    IOptions<SenderDomainOptions> options,
    IOptions<DkimOptions> globalDkim,
    ILogger<SenderSigning> logger)
{
    private readonly Lazy<DkimSigner?> _global = new(() => MessageComposer.CreateSigner(globalDkim.Value));

    /// <summary>The platform-wide key of the Dkim options, for mail from domains without their own verified key.</summary>
    public DkimSigner? GlobalSigner => _global.Value;

    /// <summary>Whether mail from an unverified domain may go out (<see cref="SenderDomainOptions.AllowUnverified"/>).</summary>
    public bool AllowUnverified => options.Value.AllowUnverified == true;

    public async Task<SenderIdentity> ResolveAsync(Guid tenantId, string? fromEmail, CancellationToken ct)
    {
        var domain = SenderDomainStore.DomainOf(fromEmail);
        if (domain is null)
        {
            return new SenderIdentity(null, false, false, GlobalSigner, null, null);
        }
        var key = $"sender-identity:{tenantId:N}:{domain}";
        if (cache.TryGetValue(key, out SenderIdentity? cached))
        {
            return cached!;
        }
        var identity = await LoadAsync(tenantId, domain, ct);
        if (options.Value.CacheDuration > TimeSpan.Zero)
        {
            cache.Set(key, identity, options.Value.CacheDuration);
        }
        return identity;
    }

    private async Task<SenderIdentity> LoadAsync(Guid tenantId, string domain, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            SELECT d.status, k.id, k.selector, k.private_key
            FROM sender_domains d
            LEFT JOIN sender_domain_keys k ON k.tenant_id = d.tenant_id AND k.domain = d.domain AND k.superseded_at IS NULL
            WHERE d.tenant_id = $1 AND d.domain = $2
            """, tenantId, domain);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
        {
            return new SenderIdentity(domain, false, false, GlobalSigner, null, null);
        }
        var verified = reader.GetString(0) == SenderDomainStatuses.Verified;
        if (!verified || reader.IsDBNull(1))
        {
            return new SenderIdentity(domain, true, false, GlobalSigner, null, null);
        }
        var keyId = reader.GetGuid(1);
        var selector = reader.GetString(2);
        var stored = (byte[])reader.GetValue(3);
        DkimSigner signer;
        try
        {
            signer = SignerFor(keyId, domain, selector, stored);
        }
        catch (CryptographicException ex)
        {
            // The key ring or KeyPassword changed: the domain cannot sign, so it is treated as unverified (visible in the log).
            LogKeyUnreadable(logger, domain, selector, ex.Message);
            return new SenderIdentity(domain, true, false, GlobalSigner, null, null);
        }
        return new SenderIdentity(domain, true, true, signer, SenderDomainRecords.ReturnPathDomain(domain, options.Value), selector);
    }

    private DkimSigner SignerFor(Guid keyId, string domain, string selector, byte[] stored) =>
        cache.GetOrCreate("dkim-signer:" + keyId.ToString("N"), entry =>
        {
            entry.SlidingExpiration = TimeSpan.FromHours(1);
            var der = protector.Unprotect(keyId, stored);
            try
            {
                using var rsa = RSA.Create();
                rsa.ImportRSAPrivateKey(der, out _);
                return new RsaDkimSigner(rsa.ExportRSAPrivateKeyPem(), domain, selector);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(der);
            }
        })!;

    [LoggerMessage(LogLevel.Error, "The DKIM key {Selector} of {Domain} cannot be decrypted ({Error}); its mail is sent as from an unverified domain")]
    private static partial void LogKeyUnreadable(ILogger logger, string domain, string selector, string error);
}
