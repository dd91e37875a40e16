using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using SendEngine.Features.Transactional;

namespace SendEngine.Features.ApiKeys;

/// <summary>
/// The X-Pigeon-Api-Key authentication scheme of the transactional API. A valid key makes a principal with the claims
/// tenant_id, application_id and api_key_id; any other outcome is answered in the seed's error shape by the challenge:
/// 403 INVALID_API_KEY (missing, malformed, unknown), 403 EXPIRED_API_KEY (expired or deleted), 429 with Retry-After
/// (too many invalid keys from this address), 503 (Member Center could not be asked).
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ApiKeyHandlerLoggers loggers, UrlEncoder encoder, ApiKeyVerifier verifier)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggers, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Pigeon-Api-Key";
    /// <summary>The key's expiry (round-trip format), when it has one; not a wire claim, only this service reads it.</summary>
    public const string ExpiresAtClaim = "api_key_expires_at";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var values = Request.Headers[HeaderName];
        var key = values.Count == 1 ? values[0]?.Trim() : null;
        var address = Context.Connection.RemoteIpAddress?.ToString() ?? "";
        var outcome = await verifier.VerifyAsync(key, address, Context.RequestAborted);
        Context.Items[typeof(ApiKeyOutcome)] = outcome;
        if (outcome is not { Verdict: ApiKeyVerdict.Valid, Identity: { } id })
        {
            return AuthenticateResult.Fail(outcome.Verdict.ToString());
        }
        var identity = new ClaimsIdentity(
        [
            new Claim(ClaimNames.TenantId, id.TenantId.ToString()),
            new Claim(ClaimNames.ApplicationId, id.ApplicationId.ToString()),
            new Claim(ClaimNames.ApiKeyId, id.KeyId.ToString()),
        ], SchemeName);
        if (id.ExpiresAt is { } expires)
        {
            identity.AddClaim(new Claim(ExpiresAtClaim, expires.ToString("O", CultureInfo.InvariantCulture)));
        }
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var outcome = Context.Items[typeof(ApiKeyOutcome)] as ApiKeyOutcome ?? new ApiKeyOutcome(ApiKeyVerdict.Missing);
        switch (outcome.Verdict)
        {
            case ApiKeyVerdict.Expired:
                return TransactionalErrors.ExpiredApiKey.WriteAsync(Context, "The API key has expired or was deleted.");
            case ApiKeyVerdict.Throttled:
                Response.Headers.RetryAfter = ((int)Math.Ceiling(outcome.RetryAfter!.Value.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                return TransactionalErrors.TooManyFailedApiKeys.WriteAsync(Context,
                    "Too many invalid API keys from this address; retry after the time in Retry-After.");
            case ApiKeyVerdict.Unavailable:
                Response.Headers.RetryAfter = "5";
                return TransactionalErrors.ServiceUnavailable.WriteAsync(Context, "The API key cannot be checked right now; retry shortly.");
            case ApiKeyVerdict.Missing:
                return TransactionalErrors.InvalidApiKey.WriteAsync(Context, $"The {HeaderName} header is missing.");
            default:
                return TransactionalErrors.InvalidApiKey.WriteAsync(Context, "The API key is not valid.");
        }
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        TransactionalErrors.InvalidApiKey.WriteAsync(Context, "The API key does not allow this request.");
}

/// <summary>
/// The logger factory of <see cref="ApiKeyAuthenticationHandler"/>: a handler is created for every request and asks for
/// its logger in its constructor, which Serilog's factory answered with a new logger each time; this one keeps them.
/// </summary>
public sealed class ApiKeyHandlerLoggers(ILoggerFactory inner) : ILoggerFactory
{
    private readonly ConcurrentDictionary<string, ILogger> _loggers = new(StringComparer.Ordinal);

    public ILogger CreateLogger(string categoryName) => _loggers.GetOrAdd(categoryName, inner.CreateLogger);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    /// <summary>The application's factory is not this one's to dispose.</summary>
    public void Dispose()
    {
    }
}
