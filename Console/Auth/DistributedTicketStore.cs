using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Caching.Distributed;

namespace NewsletterConsole.Auth;

/// <summary>
/// Keeps the authentication ticket (with the access, refresh and id tokens) on the server; the browser's cookie holds
/// only a random session key. An in-memory cache by default: a restart signs people out (they sign in again with one
/// click while their Member Center session lasts); several console instances need a shared IDistributedCache.
/// </summary>
public sealed class DistributedTicketStore(IDistributedCache cache, TimeProvider time) : ITicketStore
{
    private const string Prefix = "console-ticket:";

    public async Task<string> StoreAsync(AuthenticationTicket ticket)
    {
        var key = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await RenewAsync(key, ticket);
        return key;
    }

    public Task RenewAsync(string key, AuthenticationTicket ticket) => RenewAsync(key, ticket, default);

    public Task RenewAsync(string key, AuthenticationTicket ticket, CancellationToken cancellationToken)
    {
        var options = new DistributedCacheEntryOptions();
        if (ticket.Properties.ExpiresUtc is { } expires)
        {
            options.AbsoluteExpiration = expires;
        }
        else
        {
            options.AbsoluteExpiration = time.GetUtcNow().AddHours(8);
        }
        return cache.SetAsync(Prefix + key, TicketSerializer.Default.Serialize(ticket), options, cancellationToken);
    }

    public Task<AuthenticationTicket?> RetrieveAsync(string key) => RetrieveAsync(key, default);

    public async Task<AuthenticationTicket?> RetrieveAsync(string key, CancellationToken cancellationToken)
    {
        var bytes = await cache.GetAsync(Prefix + key, cancellationToken);
        return bytes is null ? null : TicketSerializer.Default.Deserialize(bytes);
    }

    public Task RemoveAsync(string key) => RemoveAsync(key, default);

    public Task RemoveAsync(string key, CancellationToken cancellationToken) => cache.RemoveAsync(Prefix + key, cancellationToken);
}
