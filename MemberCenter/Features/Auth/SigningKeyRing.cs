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
/// A revoked key is neither published nor used, here or (after their next refresh) on the other replicas.
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

    // Serialises load-and-apply: a refresh that read the table before a revocation must not apply after it.
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private volatile IReadOnlyList<(SigningKey Row, X509Certificate2 Cert)> _keys = [];
    private string _fingerprint = "";

    public IReadOnlyList<SigningKey> Keys => _keys.Select(k => k.Row).ToArray();

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await EncryptStoredKeysAsync(cancellationToken);
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
        await _applyLock.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            await ApplyAsync(db, ct);
        }
        finally
        {
            _applyLock.Release();
        }
    }

    /// <summary>Creates a key that starts signing after the pre-publication delay (or at once with <paramref name="immediately"/>).</summary>
    public async Task<SigningKey> RotateAsync(bool immediately, CancellationToken ct)
    {
        await _applyLock.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            var now = clock.GetUtcNow();
            var key = await CreateNextKeyAsync(db, immediately ? now : now + keyOptions.Value.PrePublish, ct);
            await ApplyAsync(db, ct);
            return key!;
        }
        finally
        {
            _applyLock.Release();
        }
    }

    /// <summary>
    /// Withdraws a key at once on this replica (the others follow within <see cref="SigningKeyOptions.RefreshInterval"/>).
    /// When it was the key signing now, a new key signs at once: there is no time for pre-publication, and relying
    /// parties fetch the JWKS again when they meet its unknown kid. Null when no such key exists.
    /// </summary>
    public async Task<SigningKey?> RevokeAsync(string keyId, CancellationToken ct)
    {
        await _applyLock.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            var key = await db.SigningKeys.FirstOrDefaultAsync(k => k.Id == keyId, ct);
            if (key is null)
            {
                return null;
            }
            if (key.RevokedAt is null)
            {
                key.RevokedAt = clock.GetUtcNow();
                await db.SaveChangesAsync(ct);
                LogKeyRevoked(logger, key.Id);
            }
            await ApplyAsync(db, ct);
            return key;
        }
        finally
        {
            _applyLock.Release();
        }
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

    private async Task ApplyAsync(MemberCenterDbContext db, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var rows = await LoadPublishedAsync(db, now, ct);
        if (NextKeyStart(rows, now) is not null)
        {
            await CreateNextKeyAsync(db, notBefore: null, ct);
            rows = await LoadPublishedAsync(db, now, ct);
        }
        Apply(rows, now);
    }

    /// <summary>When the next key must start signing, or null while the published keys suffice.</summary>
    private DateTimeOffset? NextKeyStart(IReadOnlyCollection<SigningKey> published, DateTimeOffset now)
    {
        if (!published.Any(k => k.NotBefore <= now && k.NotAfter > now))
        {
            // Nothing may sign (first start, or the signing key was revoked): no time for pre-publication.
            return now;
        }
        return published.Any(k => k.NotAfter - keyOptions.Value.RotateBefore > now) ? null : now + keyOptions.Value.PrePublish;
    }

    private async Task<List<SigningKey>> LoadPublishedAsync(MemberCenterDbContext db, DateTimeOffset now, CancellationToken ct)
    {
        // A key that stopped signing stays published while tokens it signed can still be presented.
        var retention = authOptions.Value.AccessTokenLifetime + TimeSpan.FromMinutes(5);
        var horizon = now - retention;
        return await db.SigningKeys.AsNoTracking().Where(k => k.NotAfter > horizon && k.RevokedAt == null).OrderBy(k => k.NotBefore).ToListAsync(ct);
    }

    /// <summary>
    /// Creates a key signing from <paramref name="notBefore"/>; with null, only if one is still due once the rotation
    /// lock is held (another replica may have created it meanwhile), and then returns null when none was.
    /// </summary>
    private async Task<SigningKey?> CreateNextKeyAsync(MemberCenterDbContext db, DateTimeOffset? notBefore, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({RotationLockId})", ct);
        var now = clock.GetUtcNow();
        if (notBefore is null)
        {
            var fresh = await db.SigningKeys.AsNoTracking().Where(k => k.NotAfter > now && k.RevokedAt == null).ToListAsync(ct);
            notBefore = NextKeyStart(fresh, now);
            if (notBefore is null)
            {
                await tx.CommitAsync(ct);
                return null;
            }
        }

        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=Newsletter Member Center token signing", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        // Whole seconds: certificates cannot say more, and NotBefore must not round to the past.
        var start = DateTimeOffset.FromUnixTimeSeconds(notBefore.Value.ToUnixTimeSeconds());
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
            Certificate = Protect(cert, keyOptions.Value.Password),
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

    /// <summary>
    /// With a password configured, re-stores every key that is still unprotected (created before the password was set)
    /// encrypted with it, so an installation that adds a password has no plaintext private key left after one start.
    /// </summary>
    private async Task EncryptStoredKeysAsync(CancellationToken ct)
    {
        if (keyOptions.Value.Password is not { } password)
        {
            return;
        }
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({RotationLockId})", ct);
        var encrypted = 0;
        foreach (var row in await db.SigningKeys.ToListAsync(ct))
        {
            X509Certificate2 cert;
            try
            {
                cert = X509CertificateLoader.LoadPkcs12(row.Certificate, null, X509KeyStorageFlags.Exportable | X509KeyStorageFlags.EphemeralKeySet);
            }
            catch (CryptographicException)
            {
                continue; // already protected
            }
            using (cert)
            {
                row.Certificate = Protect(cert, password);
            }
            encrypted++;
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        if (encrypted > 0)
        {
            LogKeysEncrypted(logger, encrypted);
        }
    }

    private static byte[] Protect(X509Certificate2 cert, string? password) => password is not null
        ? cert.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password)
        : cert.Export(X509ContentType.Pkcs12);

    private void Apply(List<SigningKey> rows, DateTimeOffset now)
    {
        // The set of keys and which of them may sign now: when either changes, OpenIddict must re-sort its credentials.
        var fingerprint = string.Join(";", rows.Select(k => $"{k.Id}:{k.NotBefore <= now}:{k.NotAfter > now}"));
        if (fingerprint == _fingerprint)
        {
            return;
        }
        _keys = rows.Select(r => (r, Load(r, keyOptions.Value.Password))).ToArray();
        _fingerprint = fingerprint;
        serverOptionsCache.TryRemove(Options.DefaultName);
        validationOptionsCache.TryRemove(Options.DefaultName);
        LogKeysApplied(logger, rows.Count);
    }

    /// <summary>A key stored with the configured password, or (stored before one was configured) without.</summary>
    private static X509Certificate2 Load(SigningKey key, string? password)
    {
        string?[] candidates = password is null ? [null] : [password, null];
        foreach (var candidate in candidates)
        {
            try
            {
                return X509CertificateLoader.LoadPkcs12(key.Certificate, candidate, X509KeyStorageFlags.EphemeralKeySet);
            }
            catch (CryptographicException)
            {
                // Not protected with this password: try the next.
            }
        }
        throw new InvalidOperationException(
            $"Signing key {key.Id} cannot be decrypted: it was stored with a password other than Auth:SigningKeys:Password (Auth__SigningKeys__Password){(password is null ? ", which is not set" : "")}.");
    }

    [LoggerMessage(LogLevel.Information, "Created signing key {KeyId}, signing from {NotBefore} to {NotAfter}")]
    private static partial void LogKeyCreated(ILogger logger, string keyId, DateTimeOffset notBefore, DateTimeOffset notAfter);

    [LoggerMessage(LogLevel.Warning, "Revoked signing key {KeyId}: withdrawn from the JWKS and no longer signing")]
    private static partial void LogKeyRevoked(ILogger logger, string keyId);

    [LoggerMessage(LogLevel.Information, "Encrypted {Count} signing keys that were stored unprotected")]
    private static partial void LogKeysEncrypted(ILogger logger, int count);

    [LoggerMessage(LogLevel.Information, "Signing keys applied: {Count} published")]
    private static partial void LogKeysApplied(ILogger logger, int count);

    [LoggerMessage(LogLevel.Warning, "Refreshing signing keys failed; keeping the current ones")]
    private static partial void LogRefreshFailed(ILogger logger, Exception ex);
}
