using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using NewsletterConsole.Data;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Auth;

/// <summary>
/// Keeps the authentication ticket (with the access, refresh and id tokens) in the console's database; the browser's
/// cookie holds only a random session key. Rows are keyed by the key's SHA-256 and hold the ticket encrypted with Data
/// Protection (whose key ring is in the same database, shared by every instance), so sessions survive a restart and
/// work on any instance. An expired row is never returned and is deleted by <see cref="SessionTicketCleanup"/>.
/// </summary>
public sealed class DatabaseTicketStore(IDbContextFactory<ConsoleDbContext> contexts, IDataProtectionProvider protection,
    IOptions<ConsoleOptions> options, TimeProvider time) : ITicketStore
{
    private readonly IDataProtector _protector = protection.CreateProtector("NewsletterConsole.SessionTicket.v1");

    public async Task<string> StoreAsync(AuthenticationTicket ticket)
    {
        var key = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        await RenewAsync(key, ticket, CancellationToken.None);
        return key;
    }

    public Task RenewAsync(string key, AuthenticationTicket ticket) => RenewAsync(key, ticket, CancellationToken.None);

    public async Task RenewAsync(string key, AuthenticationTicket ticket, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var expires = ticket.Properties.ExpiresUtc ?? now + options.Value.SessionIdleTimeout;
        var hash = Hash(key);
        var protectedTicket = _protector.Protect(TicketSerializer.Default.Serialize(ticket));
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var updated = await db.SessionTickets.Where(t => t.KeyHash == hash)
            .ExecuteUpdateAsync(u => u.SetProperty(t => t.Ticket, protectedTicket).SetProperty(t => t.UpdatedAt, now).SetProperty(t => t.ExpiresAt, expires), cancellationToken);
        if (updated == 0)
        {
            db.SessionTickets.Add(new SessionTicket
            {
                KeyHash = hash,
                Ticket = protectedTicket,
                Subject = ticket.Principal.FindFirstValue(ConsoleClaims.Subject),
                CreatedAt = now,
                UpdatedAt = now,
                ExpiresAt = expires,
            });
            await db.SaveChangesAsync(cancellationToken);
        }
    }

    public Task<AuthenticationTicket?> RetrieveAsync(string key) => RetrieveAsync(key, CancellationToken.None);

    public async Task<AuthenticationTicket?> RetrieveAsync(string key, CancellationToken cancellationToken)
    {
        var hash = Hash(key);
        var now = time.GetUtcNow();
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var row = await db.SessionTickets.AsNoTracking().Where(t => t.KeyHash == hash && t.ExpiresAt > now)
            .Select(t => t.Ticket).FirstOrDefaultAsync(cancellationToken);
        if (row is null)
        {
            return null;
        }
        try
        {
            return TicketSerializer.Default.Deserialize(_protector.Unprotect(row));
        }
        catch (CryptographicException)
        {
            // Its key is gone from the ring (or the row was tampered with): the session is over.
            return null;
        }
    }

    public Task RemoveAsync(string key) => RemoveAsync(key, CancellationToken.None);

    public async Task RemoveAsync(string key, CancellationToken cancellationToken)
    {
        var hash = Hash(key);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await db.SessionTickets.Where(t => t.KeyHash == hash).ExecuteDeleteAsync(cancellationToken);
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}

/// <summary>Deletes expired sessions every <see cref="ConsoleOptions.SessionCleanupInterval"/>.</summary>
public sealed partial class SessionTicketCleanup(IDbContextFactory<ConsoleDbContext> contexts, IOptions<ConsoleOptions> options,
    TimeProvider time, ILogger<SessionTicketCleanup> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SessionCleanupInterval, time);
        do
        {
            try
            {
                await using var db = await contexts.CreateDbContextAsync(stoppingToken);
                var now = time.GetUtcNow();
                var deleted = await db.SessionTickets.Where(t => t.ExpiresAt <= now).ExecuteDeleteAsync(stoppingToken);
                if (deleted > 0)
                {
                    LogDeleted(logger, deleted);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(logger, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(LogLevel.Information, "Deleted {Count} expired console sessions")]
    private static partial void LogDeleted(ILogger logger, int count);

    [LoggerMessage(LogLevel.Warning, "Deleting expired console sessions failed; trying again at the next interval")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
