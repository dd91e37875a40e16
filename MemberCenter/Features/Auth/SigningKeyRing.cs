using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Server;
using OpenIddict.Validation;

namespace MemberCenter.Features.Auth;

/// <summary>
/// Keeps OpenIddict's signing credentials in step with the signing_keys table. OpenIddict publishes every
/// registered key in the JWKS and signs with the valid certificate that expires last, so a key created with a
/// future NotBefore is published before it signs, and a retired key stays published until its tokens expire.
/// </summary>
public sealed partial class SigningKeyRing(
    IServiceScopeFactory scopes,
    IOptions<SigningKeyOptions> keyOptions,
    IOptions<AuthOptions> authOptions,
    IOptionsMonitorCache<OpenIddictServerOptions> serverOptionsCache,
    IOptionsMonitorCache<OpenIddictValidationOptions> validationOptionsCache,
    TimeProvider clock,
    ILogger<SigningKeyRing> logger) : BackgroundService, IConfigureOptions<OpenIddictServerOptions>
{
    // Distinct from other advisory locks in this database; only one replica generates a key at a time.
    private const long RotationLockId = 0x4E4C_5349_474E;

    private volatile IReadOnlyList<(SigningKey Row, X509Certificate2 Cert)> _keys = [];
    private string _fingerprint = "";

    public IReadOnlyList<SigningKey> Keys => _keys.Select(k => k.Row).ToArray();

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Keys must be loaded before the first request builds OpenIddict's options.
        await RefreshAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(keyOptions.Value.RefreshInterval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RefreshAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogRefreshFailed(logger, ex);
            }
        }
    }

    /// <summary>Re-reads the keys, creates the next one when due, and rebuilds OpenIddict's options if anything changed.</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        var now = clock.GetUtcNow();
        var options = keyOptions.Value;

        var rows = await LoadPublishedAsync(db, now, ct);
        if (!rows.Any(k => k.NotAfter - options.RotateBefore > now))
        {
            await CreateNextKeyAsync(db, rows.Count == 0 ? now : now + options.PrePublish, ct);
            rows = await LoadPublishedAsync(db, now, ct);
        }
        Apply(rows, now);
    }

    /// <summary>Creates a key that starts signing after the pre-publication delay (or at once with <paramref name="immediately"/>).</summary>
    public async Task<SigningKey> RotateAsync(bool immediately, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        var now = clock.GetUtcNow();
        var key = await CreateNextKeyAsync(db, immediately ? now : now + keyOptions.Value.PrePublish, ct, force: true);
        Apply(await LoadPublishedAsync(db, now, ct), now);
        return key;
    }

    /// <summary>
    /// The key OpenIddict signs with now (the valid one that expires last), for the tokens Member Center mints for its own
    /// calls to Send Engine (see Features/Privacy/SendEngineToken).
    /// </summary>
    public SigningCredentials CurrentSigningCredentials()
    {
        var now = clock.GetUtcNow();
        var (_, cert) = _keys.Where(k => k.Row.NotBefore <= now && k.Row.NotAfter > now).OrderBy(k => k.Row.NotAfter).LastOrDefault();
        return cert is null
            ? throw new InvalidOperationException("No signing key is valid now.")
            : new SigningCredentials(new X509SecurityKey(cert), SecurityAlgorithms.RsaSha256);
    }

    public void Configure(OpenIddictServerOptions options)
    {
        var keys = _keys;
        if (keys.Count == 0)
        {
            throw new InvalidOperationException("Signing keys are not loaded yet; SigningKeyRing must start before the server.");
        }
        foreach (var (_, cert) in keys)
        {
            options.SigningCredentials.Add(new SigningCredentials(new X509SecurityKey(cert), SecurityAlgorithms.RsaSha256));
        }
    }

    private async Task<List<SigningKey>> LoadPublishedAsync(MemberCenterDbContext db, DateTimeOffset now, CancellationToken ct)
    {
        // A key that stopped signing stays published while tokens it signed can still be presented.
        var retention = authOptions.Value.AccessTokenLifetime + TimeSpan.FromMinutes(5);
        var horizon = now - retention;
        return await db.SigningKeys.AsNoTracking().Where(k => k.NotAfter > horizon).OrderBy(k => k.NotBefore).ToListAsync(ct);
    }

    private async Task<SigningKey> CreateNextKeyAsync(MemberCenterDbContext db, DateTimeOffset notBefore, CancellationToken ct, bool force = false)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({RotationLockId})", ct);
        var now = clock.GetUtcNow();
        if (!force)
        {
            // Another replica may have rotated while this one waited for the lock.
            var rotateBefore = keyOptions.Value.RotateBefore;
            var fresh = await db.SigningKeys.Where(k => k.NotAfter > now).ToListAsync(ct);
            var current = fresh.FirstOrDefault(k => k.NotAfter - rotateBefore > now);
            if (current is not null)
            {
                await tx.CommitAsync(ct);
                return current;
            }
        }

        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=Newsletter Member Center token signing", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        // Whole seconds: certificates cannot say more, and NotBefore must not round to the past.
        var start = DateTimeOffset.FromUnixTimeSeconds(notBefore.ToUnixTimeSeconds());
        // OpenIddict signs with the valid key that expires last: the new key must expire after every existing one, or
        // a key rotated within the same second as the previous one might never be preferred.
        var end = start + keyOptions.Value.Lifetime;
        if (await db.SigningKeys.MaxAsync(k => (DateTimeOffset?)k.NotAfter, ct) is { } latest && end <= latest)
        {
            end = latest + TimeSpan.FromSeconds(1);
        }
        using var cert = request.CreateSelfSigned(start, end);
        var key = new SigningKey
        {
            Id = cert.Thumbprint,
            Certificate = keyOptions.Value.Password is { } password
                ? cert.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password)
                : cert.Export(X509ContentType.Pkcs12),
            NotBefore = cert.NotBefore.ToUniversalTime(),
            NotAfter = cert.NotAfter.ToUniversalTime(),
            CreatedAt = now,
        };
        db.SigningKeys.Add(key);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        LogKeyCreated(logger, key.Id, key.NotBefore, key.NotAfter);
        return key;
    }

    private void Apply(List<SigningKey> rows, DateTimeOffset now)
    {
        // The set of keys and which of them may sign now: when either changes, OpenIddict must re-sort its credentials.
        var fingerprint = string.Join(";", rows.Select(k => $"{k.Id}:{k.NotBefore <= now}:{k.NotAfter > now}"));
        if (fingerprint == _fingerprint)
        {
            return;
        }
        _keys = rows.Select(r => (r, Load(r.Certificate, keyOptions.Value.Password))).ToArray();
        _fingerprint = fingerprint;
        serverOptionsCache.TryRemove(Options.DefaultName);
        validationOptionsCache.TryRemove(Options.DefaultName);
        LogKeysApplied(logger, rows.Count);
    }

    /// <summary>A key stored with the configured password, or (stored before one was configured) without.</summary>
    private static X509Certificate2 Load(byte[] pkcs12, string? password)
    {
        if (password is not null)
        {
            try
            {
                return X509CertificateLoader.LoadPkcs12(pkcs12, password, X509KeyStorageFlags.EphemeralKeySet);
            }
            catch (CryptographicException)
            {
                // Not protected with this password: an older, unprotected key.
            }
        }
        return X509CertificateLoader.LoadPkcs12(pkcs12, null, X509KeyStorageFlags.EphemeralKeySet);
    }

    [LoggerMessage(LogLevel.Information, "Created signing key {KeyId}, signing from {NotBefore} to {NotAfter}")]
    private static partial void LogKeyCreated(ILogger logger, string keyId, DateTimeOffset notBefore, DateTimeOffset notAfter);

    [LoggerMessage(LogLevel.Information, "Signing keys applied: {Count} published")]
    private static partial void LogKeysApplied(ILogger logger, int count);

    [LoggerMessage(LogLevel.Warning, "Refreshing signing keys failed; keeping the current ones")]
    private static partial void LogRefreshFailed(ILogger logger, Exception ex);
}
