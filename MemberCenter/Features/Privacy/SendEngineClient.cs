using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MemberCenter.Features.Auth;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Privacy;

public sealed class SendEngineOptions
{
    public const string Section = "SendEngine";

    /// <summary>Where Send Engine's internal routes answer.</summary>
    [Required, Url]
    public string BaseUrl { get; set; } = "http://localhost:7860";

    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often the queue of calls to Send Engine is looked at when nothing wakes it.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest wait between two attempts of a call while Send Engine is unreachable (1 s, doubling, up to this).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Member Center's own access tokens for Send Engine's internal routes: signed with the key OpenIddict signs with,
/// so Send Engine validates them through the same discovery document and JWKS as every other token. Audience
/// send_engine_internal, scope internal:subscribers.erase, no tenant_id; five minutes, reused until one is left.
/// </summary>
public sealed class SendEngineToken(SigningKeyRing keys, IOptions<AuthOptions> auth, TimeProvider clock)
{
    public const string ClientId = "member-center";
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);
    private readonly Lock _lock = new();
    private (string Token, DateTimeOffset ExpiresAt)? _current;

    public string Get()
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            if (_current is { } c && c.ExpiresAt - TimeSpan.FromMinutes(1) > now)
            {
                return c.Token;
            }
            var expires = now + Lifetime;
            var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = new Uri(auth.Value.Issuer, UriKind.Absolute).AbsoluteUri,
                Audience = Audiences.SendEngineInternal,
                Claims = new Dictionary<string, object>
                {
                    ["sub"] = ClientId,
                    [ClaimNames.ClientId] = ClientId,
                    [ClaimNames.Scope] = Scopes.InternalSubscribersErase,
                    ["jti"] = Guid.NewGuid().ToString(),
                },
                IssuedAt = now.UtcDateTime,
                NotBefore = now.UtcDateTime,
                Expires = expires.UtcDateTime,
                SigningCredentials = keys.CurrentSigningCredentials(),
                TokenType = "at+jwt",
            });
            _current = (token, expires);
            return token;
        }
    }

    /// <summary>Send Engine refused it (401): the next call mints a new one.</summary>
    public void Drop()
    {
        lock (_lock)
        {
            _current = null;
        }
    }
}

/// <summary>Send Engine's answer was not a success; <see cref="Status"/> is null when it could not be reached.</summary>
public sealed class SendEngineException(HttpStatusCode? status, string message, Exception? inner = null) : Exception(message, inner)
{
    public HttpStatusCode? Status { get; } = status;

    /// <summary>Worth retrying: unreachable, timed out, 5xx, 429, or a token it could not verify yet (401, 403).</summary>
    public bool IsTransient => Status is null or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.TooManyRequests
        or HttpStatusCode.RequestTimeout || (int?)Status >= 500;
}

/// <summary>Send Engine's internal routes for one address (docs/send-engine.md, "Internal routes for Member Center").</summary>
public sealed class SendEngineClient(HttpClient http, SendEngineToken token)
{
    private static readonly JsonSerializerOptions Json = CreateJson();

    public Task<SendEngineExport> ExportAsync(Guid tenantId, string email, CancellationToken ct) =>
        PostAsync<SendEngineExport>("internal/subscribers/export", tenantId, email, ct);

    public Task<SendEngineErasureResult> EraseAsync(Guid tenantId, string email, CancellationToken ct) =>
        PostAsync<SendEngineErasureResult>("internal/subscribers/erase", tenantId, email, ct);

    public Task<LiftErasureResult> LiftErasureAsync(Guid tenantId, string email, CancellationToken ct) =>
        PostAsync<LiftErasureResult>("internal/subscribers/lift-erasure", tenantId, email, ct);

    private async Task<T> PostAsync<T>(string path, Guid tenantId, string email, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = JsonContent.Create(new SubscriberDataRequest(tenantId.ToString(), email), options: Json),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Get());
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, ct);
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is TaskCanceledException && !ct.IsCancellationRequested))
        {
            throw new SendEngineException(null, $"Send Engine is unreachable: {ex.Message}", ex);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                if (response.StatusCode == HttpStatusCode.Unauthorized)
                {
                    token.Drop();
                }
                var body = await response.Content.ReadAsStringAsync(ct);
                throw new SendEngineException(response.StatusCode, $"Send Engine answered {(int)response.StatusCode}: {(body.Length > 300 ? body[..300] : body)}");
            }
            return (await response.Content.ReadFromJsonAsync<T>(Json, ct))!;
        }
    }

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(o);
        return o;
    }
}
