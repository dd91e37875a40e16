using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore;
using Microsoft.Extensions.Options;
using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace MemberCenter.Features.Auth;

/// <summary>
/// Limits failed client authentications at POST /oauth/token per client address and client_id. Verifying a wrong
/// secret costs a PBKDF2 hash, so without a limit anyone who knows a client_id can keep Member Center's CPU busy.
/// Keyed by address and client_id together, so one misbehaving client (or an attacker) behind a shared proxy address
/// cannot lock out the other clients there. Counted per process: with N replicas the limit is N times as loose.
/// </summary>
public sealed class ClientAuthenticationThrottle : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _failures;
    // Callers with failures in the window: a caller that never failed (every well-configured client) costs one lookup.
    private readonly ConcurrentDictionary<string, byte> _failing = new(StringComparer.Ordinal);
    private const int MaxTracked = 100_000;
    private readonly int _limit;
    private readonly int _retryAfterSeconds;

    public ClientAuthenticationThrottle(IOptions<AuthOptions> options)
    {
        var o = options.Value;
        if (o.FailedClientAuthenticationLimit <= 0)
        {
            return;
        }
        const int segments = 6;
        _limit = o.FailedClientAuthenticationLimit;
        _retryAfterSeconds = (int)Math.Ceiling(o.FailedClientAuthenticationWindow.TotalSeconds / segments);
        _failures = PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetSlidingWindowLimiter(key, _ => new SlidingWindowRateLimiterOptions
        {
            PermitLimit = o.FailedClientAuthenticationLimit,
            Window = o.FailedClientAuthenticationWindow,
            SegmentsPerWindow = segments,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    private static string Key(HttpContext http, string? clientId) => $"{http.Connection.RemoteIpAddress}|{clientId}";

    private bool IsBlocked(string key)
    {
        if (_failures is null || !_failing.ContainsKey(key))
        {
            return false;
        }
        var available = _failures.GetStatistics(key)?.CurrentAvailablePermits ?? _limit;
        if (available >= _limit)
        {
            _failing.TryRemove(key, out _); // the window slid past its failures
        }
        return available <= 0;
    }

    private void RecordFailure(string key)
    {
        if (_failures is null)
        {
            return;
        }
        if (_failing.Count >= MaxTracked)
        {
            // Many distinct callers failing (random client_ids): forget who they were rather than grow without bound;
            // the limiter still has their counts, so a blocked caller is blocked again after one more failure.
            _failing.Clear();
        }
        _failing[key] = 0;
        using var lease = _failures.AttemptAcquire(key);
    }

    public void Dispose() => _failures?.Dispose();

    /// <summary>Answers 429 before OpenIddict verifies anything while the caller is over the limit.</summary>
    public async Task InvokeAsync(HttpContext http, Func<Task> next)
    {
        if (_failures is null || !HttpMethods.IsPost(http.Request.Method) || !http.Request.Path.Equals("/oauth/token", StringComparison.Ordinal))
        {
            await next();
            return;
        }
        var clientId = BasicClientId(http.Request) ?? await FormClientIdAsync(http.Request);
        if (!IsBlocked(Key(http, clientId)))
        {
            await next();
            return;
        }
        http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        http.Response.Headers.RetryAfter = _retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        http.Response.Headers.CacheControl = "no-store";
        // RFC 6749 error shape like every other answer of this endpoint; not invalid_client, since the secret may be right.
        await http.Response.WriteAsJsonAsync(new Dictionary<string, string>
        {
            [Parameters.Error] = Errors.TemporarilyUnavailable,
            [Parameters.ErrorDescription] = $"Too many failed client authentications from this address for this client; retry in {_retryAfterSeconds} s.",
        }, http.RequestAborted);
    }

    /// <summary>client_id from the form; a form that cannot be read is left to OpenIddict to refuse (invalid_request).</summary>
    private static async Task<string?> FormClientIdAsync(HttpRequest request)
    {
        if (!request.HasFormContentType)
        {
            return null;
        }
        try
        {
            return (await request.ReadFormAsync(request.HttpContext.RequestAborted))[Parameters.ClientId].ToString();
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException or IOException)
        {
            return null;
        }
    }

    /// <summary>client_id from <c>Authorization: Basic</c> (RFC 6749 2.3.1: form-urlencoded, then base64), as OpenIddict reads it.</summary>
    private static string? BasicClientId(HttpRequest request)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization, out var header)
            || !string.Equals(header.Scheme, "Basic", StringComparison.OrdinalIgnoreCase) || header.Parameter is null)
        {
            return null;
        }
        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header.Parameter));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? null : Uri.UnescapeDataString(decoded[..colon].Replace('+', ' '));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>Counts each invalid_client answer of the token endpoint against its caller.</summary>
    public sealed class RecordFailures(ClientAuthenticationThrottle throttle) : IOpenIddictServerHandler<ApplyTokenResponseContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } = OpenIddictServerHandlerDescriptor.CreateBuilder<ApplyTokenResponseContext>()
            .UseSingletonHandler<RecordFailures>()
            .SetOrder(int.MinValue + 100_000)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

        public ValueTask HandleAsync(ApplyTokenResponseContext context)
        {
            if (context.Error == Errors.InvalidClient && context.Transaction.GetHttpRequest() is { } request)
            {
                throttle.RecordFailure(Key(request.HttpContext, context.Request?.ClientId));
            }
            return ValueTask.CompletedTask;
        }
    }
}
