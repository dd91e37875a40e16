using System.Buffers.Text;
using System.Security.Cryptography;
using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// The link-signing keys of stateless unsubscribe links, decrypted in memory and kept in step with the link_keys table.
/// One key signs at a time; a new one takes over every <c>Newsletter:LinkKeyRotation</c>, and an old one keeps verifying
/// until every link it signed has expired (<c>Newsletter:UnsubscribeTokenLifetime</c>), when it is deleted.
/// A PostgreSQL advisory lock keeps two replicas from rotating at once. Secrets are never logged.
/// </summary>
public sealed partial class LinkKeyRing(
    IServiceScopeFactory scopes,
    LinkKeyProtector protector,
    IOptions<NewsletterOptions> options,
    TimeProvider clock,
    ILogger<LinkKeyRing> logger) : BackgroundService
{
    // Distinct from the signing-key rotation lock ("NLSIGN").
    private const long RotationLockId = 0x4E4C_4C49_4E4B;
    private const int KeyIdLength = 8;
    private static readonly TimeSpan UnknownKeyRefreshGap = TimeSpan.FromSeconds(5);

    /// <summary>A decrypted key. The secret never leaves Member Center; Send Engine gets keys derived from it.</summary>
    public sealed class Key(string id, byte[] secret, DateTimeOffset createdAt, DateTimeOffset signsUntil, DateTimeOffset retireAt)
    {
        public string Id { get; } = id;
        internal byte[] Secret { get; } = secret;
        public DateTimeOffset CreatedAt { get; } = createdAt;
        public DateTimeOffset SignsUntil { get; } = signsUntil;
        public DateTimeOffset RetireAt { get; } = retireAt;

        /// <summary>K_link for one tenant, list and issued_at (unix seconds).</summary>
        public byte[] DeriveLinkKey(Guid tenantId, Guid listId, long issuedAt) =>
            UnsubscribeLinkToken.DeriveLinkKey(Secret, tenantId, listId, issuedAt);

        public override string ToString() => Id;
    }

    private volatile Dictionary<string, Key> _keys = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private long _lastRefreshTicks = DateTimeOffset.MinValue.UtcTicks;

    public static bool IsKeyId(string? s) =>
        s is { Length: KeyIdLength } && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    public IReadOnlyCollection<Key> Keys => _keys.Values;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.LinkKeyRefreshInterval, clock);
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

    /// <summary>The key that signs links now (created when due).</summary>
    public async Task<Key> GetCurrentAsync(CancellationToken ct)
    {
        if (Current(_keys, clock.GetUtcNow()) is { } key)
        {
            return key;
        }
        await RefreshAsync(ct);
        return Current(_keys, clock.GetUtcNow()) ?? throw new InvalidOperationException("No link-signing key could be loaded or created.");
    }

    /// <summary>A key that still verifies (not retired), or null.</summary>
    public async Task<Key?> FindAsync(string keyId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (_keys.TryGetValue(keyId, out var key))
        {
            return key.RetireAt > now ? key : null;
        }
        // Another replica may have created it since the last refresh; unknown ids re-read the table at most every 5 s,
        // so made-up key ids cannot turn every request into a table read.
        if (!IsKeyId(keyId) || now.UtcTicks - Interlocked.Read(ref _lastRefreshTicks) < UnknownKeyRefreshGap.Ticks)
        {
            return null;
        }
        await RefreshAsync(ct);
        return _keys.TryGetValue(keyId, out key) && key.RetireAt > clock.GetUtcNow() ? key : null;
    }

    /// <summary>Deletes retired keys, re-reads the table and creates the next key when none signs now.</summary>
    public async Task RefreshAsync(CancellationToken ct)
    {
        await _refreshLock.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            var now = clock.GetUtcNow();
            var deleted = await db.LinkKeys.Where(k => k.RetireAt <= now).ExecuteDeleteAsync(ct);
            if (deleted > 0)
            {
                LogKeysRetired(logger, deleted);
            }
            var rows = await db.LinkKeys.AsNoTracking().ToListAsync(ct);
            Apply(rows);
            if (Current(_keys, now) is null)
            {
                // None signs now, or the one that does cannot be decrypted here: end it and create the next.
                await CreateAsync(db, endCurrent: rows.Any(k => k.CreatedAt <= now && k.SignsUntil > now), ct);
                Apply(await db.LinkKeys.AsNoTracking().ToListAsync(ct));
            }
            Interlocked.Exchange(ref _lastRefreshTicks, now.UtcTicks);
        }
        finally
        {
            _refreshLock.Release();
        }
    }

    /// <summary>Ends the current key's signing now and creates the next one (the old one keeps verifying its links).</summary>
    public async Task<Key> RotateAsync(CancellationToken ct)
    {
        await _refreshLock.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            var id = await CreateAsync(db, endCurrent: true, ct);
            Apply(await db.LinkKeys.AsNoTracking().ToListAsync(ct));
            Interlocked.Exchange(ref _lastRefreshTicks, clock.GetUtcNow().UtcTicks);
            return _keys[id];
        }
        finally
        {
            _refreshLock.Release();
        }
    }

    private static Key? Current(Dictionary<string, Key> keys, DateTimeOffset now)
    {
        Key? best = null;
        foreach (var k in keys.Values)
        {
            if (k.CreatedAt <= now && k.SignsUntil > now && (best is null || k.CreatedAt > best.CreatedAt))
            {
                best = k;
            }
        }
        return best;
    }

    private async Task<string> CreateAsync(MemberCenterDbContext db, bool endCurrent, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({RotationLockId})", ct);
        // Whole seconds: issued_at in links is in unix seconds and must never fall before its key's creation.
        var now = DateTimeOffset.FromUnixTimeSeconds(clock.GetUtcNow().ToUnixTimeSeconds());
        var o = options.Value;
        if (!endCurrent)
        {
            // Another replica may have rotated while this one waited for the lock.
            var current = await db.LinkKeys.Where(k => k.CreatedAt <= now && k.SignsUntil > now).OrderByDescending(k => k.CreatedAt)
                .Select(k => k.Id).FirstOrDefaultAsync(ct);
            if (current is not null)
            {
                await tx.CommitAsync(ct);
                return current;
            }
        }
        else
        {
            await db.LinkKeys.Where(k => k.SignsUntil > now).ExecuteUpdateAsync(u => u
                .SetProperty(k => k.SignsUntil, now)
                .SetProperty(k => k.RetireAt, now + o.UnsubscribeTokenLifetime), ct);
        }
        var id = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(6));
        var secret = RandomNumberGenerator.GetBytes(32);
        var row = new LinkKey
        {
            Id = id,
            ProtectedSecret = protector.Protect(id, secret),
            CreatedAt = now,
            SignsUntil = now + o.LinkKeyRotation,
            RetireAt = now + o.LinkKeyRotation + o.UnsubscribeTokenLifetime,
        };
        db.LinkKeys.Add(row);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        CryptographicOperations.ZeroMemory(secret);
        LogKeyCreated(logger, id, row.CreatedAt, row.SignsUntil, row.RetireAt);
        return id;
    }

    private void Apply(List<LinkKey> rows)
    {
        var old = _keys;
        var keys = new Dictionary<string, Key>(rows.Count, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            byte[] secret;
            if (old.TryGetValue(row.Id, out var known))
            {
                secret = known.Secret;
            }
            else
            {
                try
                {
                    secret = protector.Unprotect(row.Id, row.ProtectedSecret);
                }
                catch (CryptographicException ex)
                {
                    LogUndecryptable(logger, row.Id, ex.Message);
                    continue;
                }
            }
            keys[row.Id] = new Key(row.Id, secret, row.CreatedAt, row.SignsUntil, row.RetireAt);
        }
        _keys = keys;
    }

    [LoggerMessage(LogLevel.Information, "Created link-signing key {KeyId}: signs from {CreatedAt} until {SignsUntil}, verifies until {RetireAt}")]
    private static partial void LogKeyCreated(ILogger logger, string keyId, DateTimeOffset createdAt, DateTimeOffset signsUntil, DateTimeOffset retireAt);

    [LoggerMessage(LogLevel.Information, "Deleted {Count} retired link-signing keys")]
    private static partial void LogKeysRetired(ILogger logger, int count);

    [LoggerMessage(LogLevel.Error, "Link-signing key {KeyId} cannot be decrypted with this configuration ({Reason}); its links do not verify here")]
    private static partial void LogUndecryptable(ILogger logger, string keyId, string reason);

    [LoggerMessage(LogLevel.Warning, "Refreshing link-signing keys failed; keeping the current ones")]
    private static partial void LogRefreshFailed(ILogger logger, Exception ex);
}
