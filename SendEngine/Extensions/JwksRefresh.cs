using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Validation;
using static OpenIddict.Validation.OpenIddictValidationEvents;

namespace SendEngine.Extensions;

/// <summary>
/// Fetches Member Center's JWKS again when a token names a <c>kid</c> the cached configuration does not have
/// (a key rotated in since the last fetch). OpenIddict's own configuration refresh is periodic only.
/// Fetches start at most once per <see cref="MinInterval"/> so forged kids cannot make Send Engine hammer Member
/// Center; a token that arrives during that interval waits for the next fetch instead of being refused with stale
/// keys (a forged kid just before a real rotation must not lock the rotated key out), and every token waiting at
/// the time shares that one fetch.
/// </summary>
public sealed partial class JwksRefresher(IHttpClientFactory factory, IOptions<AuthOptions> options, TimeProvider clock, ILogger<JwksRefresher> logger)
{
    public const string HttpClientName = "jwks";
    public static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim _lock = new(1, 1);
    private IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset _fetchStartedAt = DateTimeOffset.MinValue;

    public async Task<IReadOnlyList<SecurityKey>> KeysForAsync(string kid, CancellationToken ct)
    {
        var arrived = clock.GetUtcNow();
        if (_keys.Any(k => k.KeyId == kid))
        {
            return _keys;
        }
        await _lock.WaitAsync(ct);
        try
        {
            // A fetch that started after this token arrived has seen every key Member Center published before it.
            if (_keys.Any(k => k.KeyId == kid) || _fetchStartedAt >= arrived)
            {
                return _keys;
            }
            var wait = _fetchStartedAt + MinInterval - clock.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, clock, ct);
            }
            _fetchStartedAt = clock.GetUtcNow();
            using var http = factory.CreateClient(HttpClientName);
            http.Timeout = TimeSpan.FromSeconds(10);
            var issuer = options.Value.Issuer.TrimEnd('/') + "/";
            using var discovery = JsonDocument.Parse(await http.GetStringAsync(issuer + ".well-known/openid-configuration", ct));
            var jwksUri = discovery.RootElement.GetProperty("jwks_uri").GetString()!;
            var jwks = new JsonWebKeySet(await http.GetStringAsync(jwksUri, ct));
            _keys = [.. jwks.GetSigningKeys()];
            LogRefreshed(logger, kid, _keys.Count);
            return _keys;
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or TaskCanceledException or KeyNotFoundException or ArgumentException)
        {
            LogRefreshFailed(logger, ex.Message);
            return _keys;
        }
        finally
        {
            _lock.Release();
        }
    }

    [LoggerMessage(LogLevel.Information, "Token signed with unknown key {KeyId}: JWKS fetched again ({Count} keys)")]
    private static partial void LogRefreshed(ILogger logger, string keyId, int count);

    [LoggerMessage(LogLevel.Warning, "JWKS refresh failed: {Error}")]
    private static partial void LogRefreshFailed(ILogger logger, string error);
}

/// <summary>Runs just before OpenIddict checks the signature and adds freshly fetched keys for an unknown kid.</summary>
public sealed class AddRotatedSigningKeys(JwksRefresher refresher) : IOpenIddictValidationHandler<ValidateTokenContext>
{
    public static OpenIddictValidationHandlerDescriptor Descriptor { get; } =
        OpenIddictValidationHandlerDescriptor.CreateBuilder<ValidateTokenContext>()
            .UseSingletonHandler<AddRotatedSigningKeys>()
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
        var known = parameters.IssuerSigningKeys ?? [];
        if (string.IsNullOrEmpty(kid) || known.Any(k => k.KeyId == kid))
        {
            return;
        }
        var fresh = await refresher.KeysForAsync(kid, context.CancellationToken);
        if (fresh.Any(k => k.KeyId == kid))
        {
            parameters.IssuerSigningKeys = known.Concat(fresh.Where(k => !known.Any(x => x.KeyId == k.KeyId))).ToList();
        }
    }
}
