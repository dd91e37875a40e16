using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using OpenIddict.EntityFrameworkCore.Models;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace MemberCenter.Features.Auth;

/// <summary>
/// Limits failed client-secret checks at POST /oauth/token. Verifying a secret costs a PBKDF2 hash, so without a limit
/// anyone who knows a client_id can keep Member Center's CPU busy. Two counts, both sliding over the window: per client
/// address and client_id (a misconfigured server cannot lock out the same client's other servers), and per client_id
/// across addresses (rotating addresses gains nothing). The checks of one client run one at a time and each is admitted
/// against the failures already counted, so a parallel burst runs at most as many hashes as the limit allows. A secret
/// verified before (cached by <see cref="CachingApplicationManager"/>) costs no hash and is never held back. Counted
/// per process: with N replicas the limits are N times as loose.
/// </summary>
public sealed class ClientAuthenticationThrottle(IOptions<AuthOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, ClientFailures> _clients = new(StringComparer.Ordinal);

    /// <summary>The answer of a secret check: valid or not, or not run because the caller is over a limit.</summary>
    public readonly record struct Verdict(bool Valid, TimeSpan? RetryAfter);

    /// <summary>
    /// Runs <paramref name="verify"/> unless <paramref name="clientId"/> from <paramref name="address"/> is over a limit,
    /// and counts it when it fails. Only known clients get here (OpenIddict refuses unknown ones without hashing), so
    /// the table is bounded by the number of clients.
    /// </summary>
    public async Task<Verdict> CheckAsync(string clientId, string address, Func<Task<bool>> verify, CancellationToken ct)
    {
        var o = options.Value;
        if (o.FailedClientAuthenticationLimit <= 0)
        {
            return new Verdict(await verify(), null);
        }
        var client = _clients.GetOrAdd(clientId, static _ => new ClientFailures());
        // One check per client at a time: the next one is admitted only once this one's failure (if any) is counted.
        await client.Gate.WaitAsync(ct);
        try
        {
            var now = clock.GetUtcNow();
            client.Prune(now - o.FailedClientAuthenticationWindow);
            client.ByAddress.TryGetValue(address, out var fromAddress);
            var wait = Max(
                RetryAfter(client.All, o.FailedClientAuthenticationLimitPerClient, o.FailedClientAuthenticationWindow, now),
                RetryAfter(fromAddress, o.FailedClientAuthenticationLimit, o.FailedClientAuthenticationWindow, now));
            if (wait is not null)
            {
                return new Verdict(false, wait);
            }
            if (await verify())
            {
                return new Verdict(true, null);
            }
            client.All.Enqueue(now);
            if (fromAddress is null)
            {
                client.ByAddress[address] = fromAddress = new Queue<DateTimeOffset>();
            }
            fromAddress.Enqueue(now);
            return new Verdict(false, null);
        }
        finally
        {
            client.Gate.Release();
        }
    }

    /// <summary>Null while under <paramref name="limit"/>; else how long until enough failures have left the window.</summary>
    private static TimeSpan? RetryAfter(Queue<DateTimeOffset>? failures, int limit, TimeSpan window, DateTimeOffset now)
    {
        if (failures is null || failures.Count < limit)
        {
            return null;
        }
        var freeing = failures.ElementAt(failures.Count - limit);
        var wait = freeing + window - now;
        return wait > TimeSpan.FromSeconds(1) ? wait : TimeSpan.FromSeconds(1);
    }

    private static TimeSpan? Max(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null ? a : a > b ? a : b;

    /// <summary>One client's failures in the window, all and per address; touched only while holding <see cref="Gate"/>.</summary>
    private sealed class ClientFailures
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public Queue<DateTimeOffset> All { get; } = new();
        // At most as many entries as failures in the window (each failure adds at most one), so it stays small.
        public Dictionary<string, Queue<DateTimeOffset>> ByAddress { get; } = new(StringComparer.Ordinal);

        public void Prune(DateTimeOffset horizon)
        {
            while (All.TryPeek(out var t) && t <= horizon)
            {
                All.Dequeue();
            }
            foreach (var (address, failures) in ByAddress)
            {
                while (failures.TryPeek(out var t) && t <= horizon)
                {
                    failures.Dequeue();
                }
                if (failures.Count == 0)
                {
                    ByAddress.Remove(address);
                }
            }
        }
    }

    /// <summary>
    /// Replaces OpenIddict's ValidateClientSecret: a secret verified before passes at once; any other goes through
    /// <see cref="CheckAsync"/>, which counts it before its hash is computed.
    /// </summary>
    public sealed class ValidateClientSecret(IOpenIddictApplicationManager applications, ClientAuthenticationThrottle throttle)
        : IOpenIddictServerHandler<ProcessAuthenticationContext>
    {
        public const string RetryAfterProperty = ".newsletter_client_authentication_retry_after";

        public static OpenIddictServerHandlerDescriptor Descriptor { get; } = OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessAuthenticationContext>()
            .AddFilter<OpenIddictServerHandlerFilters.RequireClientIdParameter>()
            .AddFilter<OpenIddictServerHandlerFilters.RequireClientSecretParameter>()
            .AddFilter<OpenIddictServerHandlerFilters.RequireDegradedModeDisabled>()
            .UseScopedHandler<ValidateClientSecret>()
            .SetOrder(OpenIddictServerHandlers.ValidateClientSecret.Descriptor.Order)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

        public async ValueTask HandleAsync(ProcessAuthenticationContext context)
        {
            // Endpoints without client authentication, as in OpenIddict's own handler.
            if (context.EndpointType is OpenIddictServerEndpointType.Authorization or OpenIddictServerEndpointType.EndSession
                or OpenIddictServerEndpointType.EndUserVerification or OpenIddictServerEndpointType.UserInfo)
            {
                return;
            }
            var ct = context.CancellationToken;
            var clientId = context.ClientId!;
            var secret = context.ClientSecret!;
            var application = await applications.FindByClientIdAsync(clientId, ct)
                ?? throw new InvalidOperationException($"Client {clientId} was validated but cannot be found.");
            if (await applications.HasClientTypeAsync(application, ClientTypes.Public, ct))
            {
                return;
            }
            if (applications is CachingApplicationManager cache && application is OpenIddictEntityFrameworkCoreApplication entity
                && await cache.IsVerifiedAsync(entity, secret, ct))
            {
                return;
            }
            var address = context.Transaction.GetHttpRequest()?.HttpContext.Connection.RemoteIpAddress?.ToString() ?? "";
            var verdict = await throttle.CheckAsync(clientId, address, () => applications.ValidateClientSecretAsync(application, secret, ct).AsTask(), ct);
            if (verdict.RetryAfter is { } wait)
            {
                context.Transaction.Properties[RetryAfterProperty] = wait;
                context.Reject(Errors.TemporarilyUnavailable,
                    $"Too many failed client authentications for this client; retry in {Seconds(wait)} s.");
            }
            else if (!verdict.Valid)
            {
                context.Reject(Errors.InvalidClient, "The specified client credentials are invalid.");
            }
        }
    }

    /// <summary>A refused check is 429 with Retry-After (OpenIddict would answer temporarily_unavailable with 503).</summary>
    public sealed class AnswerTooManyRequests : IOpenIddictServerHandler<ApplyTokenResponseContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } = OpenIddictServerHandlerDescriptor.CreateBuilder<ApplyTokenResponseContext>()
            .UseSingletonHandler<AnswerTooManyRequests>()
            .SetOrder(OpenIddictServerAspNetCoreHandlers.AttachHttpResponseCode<ApplyTokenResponseContext>.Descriptor.Order + 1)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

        public ValueTask HandleAsync(ApplyTokenResponseContext context)
        {
            if (context.Transaction.Properties.TryGetValue(ValidateClientSecret.RetryAfterProperty, out var value) && value is TimeSpan wait
                && context.Transaction.GetHttpRequest()?.HttpContext.Response is { } response)
            {
                response.StatusCode = StatusCodes.Status429TooManyRequests;
                response.Headers.RetryAfter = Seconds(wait).ToString(CultureInfo.InvariantCulture);
            }
            return ValueTask.CompletedTask;
        }
    }

    private static int Seconds(TimeSpan wait) => (int)Math.Ceiling(wait.TotalSeconds);
}
