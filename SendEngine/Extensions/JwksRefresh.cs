using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Validation;
using static OpenIddict.Validation.OpenIddictValidationEvents;

namespace SendEngine.Extensions;

/// <summary>
/// The signing keys Member Center publishes, and only those: fetched every <see cref="AuthOptions.JwksRefreshInterval"/>
/// and replaced as a whole, so a key revoked there (withdrawn from its JWKS) is dropped here within that interval.
/// A token naming a <c>kid</c> not in the current set (a key rotated in since the last fetch) fetches the JWKS at once.
/// Fetches start at most once per <see cref="MinInterval"/> so forged kids cannot make Send Engine hammer Member
/// Center; a token that arrives during that interval waits for the next fetch instead of being refused with stale
/// keys (a forged kid just before a real rotation must not lock the rotated key out), and every token waiting at
/// the time shares that one fetch. A failed fetch keeps the previous keys: Member Center being down must not
/// refuse every token.
/// </summary>
public sealed partial class JwksRefresher(IHttpClientFactory factory, IOptions<AuthOptions> options, TimeProvider clock, ILogger<JwksRefresher> logger)
    : BackgroundService
{
    public const string HttpClientName = "jwks";
    public static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _lock = new(1, 1);
    private volatile IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset _fetchStartedAt = DateTimeOffset.MinValue;

    /// <summary>The published keys; fetched first when <paramref name="kid"/> is not among them (or, without a kid, none are known).</summary>
    public async Task<IReadOnlyList<SecurityKey>> KeysForAsync(string? kid, CancellationToken ct)
    {
        var arrived = clock.GetUtcNow();
        var keys = _keys;
        if (Knows(keys, kid))
        {
            return keys;
        }
        await _lock.WaitAsync(ct);
        try
        {
            // A fetch that started after this token arrived has seen every key Member Center published before it.
            if (Knows(_keys, kid) || _fetchStartedAt >= arrived)
            {
                return _keys;
            }
            var wait = _fetchStartedAt + MinInterval - clock.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, clock, ct);
            }
            await FetchAsync(ct);
            return _keys;
        }
        finally
        {
            _lock.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.JwksRefreshInterval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await _lock.WaitAsync(stoppingToken);
            try
            {
                await FetchAsync(stoppingToken);
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    /// <summary>How many keys are known now, without fetching (the warm-up test).</summary>
    internal int KnownKeyCount => _keys.Count;

    private static bool Knows(IReadOnlyList<SecurityKey> keys, string? kid) => kid is null ? keys.Count > 0 : keys.Any(k => k.KeyId == kid);

    /// <summary>Replaces the keys with the JWKS as published now; keeps them when Member Center cannot be read. Holds <see cref="_lock"/>.</summary>
    private async Task FetchAsync(CancellationToken ct)
    {
        _fetchStartedAt = clock.GetUtcNow();
        try
        {
            using var http = factory.CreateClient(HttpClientName);
            http.Timeout = TimeSpan.FromSeconds(10);
            var issuer = options.Value.Issuer.TrimEnd('/') + "/";
            using var discovery = JsonDocument.Parse(await http.GetStringAsync(issuer + ".well-known/openid-configuration", ct));
            var jwksUri = discovery.RootElement.GetProperty("jwks_uri").GetString()!;
            var jwks = new JsonWebKeySet(await http.GetStringAsync(jwksUri, ct));
            IReadOnlyList<SecurityKey> fresh = [.. jwks.GetSigningKeys()];
            var before = _keys;
            _keys = fresh;
            if (!fresh.Select(k => k.KeyId).Order().SequenceEqual(before.Select(k => k.KeyId).Order()))
            {
                var dropped = before.Select(k => k.KeyId).Except(fresh.Select(k => k.KeyId)).ToArray();
                LogKeysChanged(logger, fresh.Count, string.Join(", ", dropped));
            }
        }
        catch (Exception ex) when (!ct.IsCancellationRequested
            && ex is HttpRequestException or JsonException or TaskCanceledException or KeyNotFoundException or ArgumentException or InvalidOperationException)
        {
            LogRefreshFailed(logger, ex.Message);
        }
    }

    [LoggerMessage(LogLevel.Information, "Member Center's JWKS changed: {Count} keys published; dropped: [{Dropped}]")]
    private static partial void LogKeysChanged(ILogger logger, int count, string dropped);

    [LoggerMessage(LogLevel.Warning, "JWKS refresh failed, keeping the previous keys: {Error}")]
    private static partial void LogRefreshFailed(ILogger logger, string error);
}

/// <summary>
/// Runs just before OpenIddict checks the token and pins what an access token must be: signed (RS256 only, so neither
/// <c>alg: none</c> nor an HMAC keyed with the public key), by a key Member Center publishes now and named by its
/// <c>kid</c>, typed <c>at+jwt</c> (RFC 9068), and within <c>nbf</c>..<c>exp</c>.
/// </summary>
public sealed class PinAccessTokenValidation(JwksRefresher refresher) : IOpenIddictValidationHandler<ValidateTokenContext>
{
    // Member Center signs with RSA keys and RS256 only (SigningKeyRing).
    private static readonly string[] Algorithms = [SecurityAlgorithms.RsaSha256];
    private static readonly string[] Types = ["at+jwt", "application/at+jwt"];

    public static OpenIddictValidationHandlerDescriptor Descriptor { get; } =
        OpenIddictValidationHandlerDescriptor.CreateBuilder<ValidateTokenContext>()
            .UseSingletonHandler<PinAccessTokenValidation>()
            .SetOrder(OpenIddictValidationHandlers.Protection.ValidateIdentityModelToken.Descriptor.Order - 1)
            .SetType(OpenIddictValidationHandlerType.Custom)
            .Build();

    public async ValueTask HandleAsync(ValidateTokenContext context)
    {
        var parameters = context.TokenValidationParameters;
        if (string.IsNullOrEmpty(context.Token) || parameters is null)
        {
            return;
        }
        string? kid;
        try
        {
            kid = new JsonWebToken(context.Token).Kid;
        }
        catch (ArgumentException)
        {
            return; // Not a JWT; OpenIddict rejects it.
        }
        // Replaces OpenIddict's keys: its copy of the JWKS is refreshed only every 12 hours and would keep a revoked key.
        parameters.IssuerSigningKeys = await refresher.KeysForAsync(string.IsNullOrEmpty(kid) ? null : kid, context.CancellationToken);
        parameters.TryAllIssuerSigningKeys = false;
        parameters.ValidAlgorithms = Algorithms;
        parameters.ValidTypes = Types;
        // OpenIddict's own type validator also takes "typ: JWT" with a token_usage claim (its 1.x/2.x tokens).
        parameters.TypeValidator = static (type, _, _) => type is not null && Types.Contains(type, StringComparer.OrdinalIgnoreCase)
            ? type
            : throw new SecurityTokenInvalidTypeException($"The token type '{type}' is not at+jwt.") { InvalidType = type };
        // OpenIddict checks exp itself but not nbf; IdentityModel checks both (with the configured clock skew).
        parameters.ValidateLifetime = true;
    }
}
