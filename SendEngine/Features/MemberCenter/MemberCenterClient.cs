using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.ServiceDefaults;

namespace SendEngine.Features.MemberCenter;

public sealed class MemberCenterOptions
{
    public const string Section = "MemberCenter";

    /// <summary>Where Member Center's API answers (token endpoint, internal API, health).</summary>
    [Required, Url]
    public string BaseUrl { get; set; } = "http://localhost:7850";

    /// <summary>Send Engine's own service client; falls back to Bootstrap:SendEngineClientId (the value Member Center is given).</summary>
    public string? ClientId { get; set; }
    public string? ClientSecret { get; set; }

    [Range(1, 5000)]
    public int PageSize { get; set; } = 1000;
}

/// <summary>
/// Member Center's internal API (docs/internal-api.md) called with Send Engine's client_credentials token,
/// which is cached until a minute before it expires and dropped on a 401.
/// </summary>
public sealed class MemberCenterClient(HttpClient http, ServiceTokenCache cache, IOptions<MemberCenterOptions> options, TimeProvider clock)
{
    private static readonly JsonSerializerOptions Json = CreateJson();

    /// <param name="limit">At most this many (and at most MemberCenter:PageSize); null: a full page.</param>
    public async Task<RecipientPage> GetRecipientsAsync(Guid tenantId, Guid listId, Guid? after, CancellationToken ct, int? limit = null)
    {
        var size = Math.Min(limit ?? int.MaxValue, options.Value.PageSize);
        var url = $"internal/lists/{listId}/recipients?tenant_id={tenantId}&limit={size}" + (after is { } a ? $"&after={a}" : "");
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, url), ct);
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<RecipientPage>(Json, ct))!;
    }

    /// <summary>
    /// The list if it exists and belongs to the tenant, with the tenant's postal address (GET /internal/lists/{id}: a
    /// read, nothing written); null: not the tenant's list.
    /// </summary>
    public async Task<InternalListResponse?> GetListAsync(Guid tenantId, Guid listId, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"internal/lists/{listId}?tenant_id={tenantId}"), ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<InternalListResponse>(Json, ct);
    }

    /// <summary>The tenant's branded footer of bulk mail (compose preview, test send): without a list (default language
    /// English), or in the default language of <paramref name="listId"/>; null: an unknown tenant, or not the tenant's list.</summary>
    public async Task<MailFooter?> GetMailFooterAsync(Guid tenantId, Guid? listId, CancellationToken ct)
    {
        var url = $"internal/tenants/{tenantId}/mail-footer" + (listId is { } l ? $"?list_id={l}" : "");
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, url), ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<InternalMailFooterResponse>(Json, ct))?.Footer;
    }

    /// <summary>
    /// The derived key to mint a job's unsubscribe links with (<see cref="Composition.UnsubscribeLinks"/>). Without
    /// <paramref name="keyId"/>/<paramref name="issuedAt"/>: the current key, issued now; with both: the same key again
    /// (a restarted job). A retired key throws <see cref="MemberCenterException"/> with status 410 (Gone), a list that is
    /// not the tenant's with 404.
    /// </summary>
    public async Task<LinkKeyResponse> GetLinkKeyAsync(Guid tenantId, Guid listId, string? keyId, DateTimeOffset? issuedAt, CancellationToken ct)
    {
        if ((keyId is null) != (issuedAt is null))
        {
            throw new ArgumentException("Give keyId and issuedAt together, or neither.");
        }
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"internal/lists/{listId}/link-key")
        {
            Content = JsonContent.Create(new LinkKeyRequest(tenantId.ToString(), keyId, issuedAt?.ToUnixTimeSeconds()), options: Json),
        }, ct);
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<LinkKeyResponse>(Json, ct))!;
    }

    /// <summary>
    /// The list's subscriptions that stopped being sendable since <paramref name="after"/> (the first recipients page's
    /// changes_cursor, then each answer's next_cursor), in commit order, at most MemberCenter:PageSize at a time.
    /// </summary>
    public async Task<SubscriptionChangesPage> GetChangesAsync(Guid tenantId, Guid listId, string after, CancellationToken ct)
    {
        var url = $"internal/lists/{listId}/changes?tenant_id={tenantId}&after={Uri.EscapeDataString(after)}&limit={options.Value.PageSize}";
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, url), ct);
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<SubscriptionChangesPage>(Json, ct))!;
    }

    /// <summary>Of <paramref name="emails"/>, those that left the list or became undeliverable since the snapshot.</summary>
    public async Task<IReadOnlyList<string>> GetNotSendableAsync(Guid tenantId, Guid listId, IReadOnlyList<string> emails, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"internal/lists/{listId}/not-sendable")
        {
            Content = JsonContent.Create(new SubscriptionStatusQuery(tenantId.ToString(), listId.ToString(), emails), options: Json),
        }, ct);
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<SubscriptionStatusResult>(Json, ct))!.NotSendable;
    }

    /// <summary>Reports a hard bounce, complaint or unsubscribe; a 404 (unknown subscriber) is not an error.</summary>
    public async Task ReportSuppressionAsync(SuppressionReport report, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, "internal/suppressions")
        {
            Content = JsonContent.Create(report, options: Json),
        }, ct);
        if (response.StatusCode != HttpStatusCode.NotFound)
        {
            await EnsureSuccessAsync(response, ct);
        }
    }

    /// <summary>Member Center's answer about the API key with this hash (<see cref="ApiKeys.ApiKeyVerifier.Hash"/>).</summary>
    public async Task<ApiKeyVerificationResponse> VerifyApiKeyAsync(string keyHash, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, "internal/api-keys/verify")
        {
            Content = JsonContent.Create(new ApiKeyVerificationRequest(keyHash), options: Json),
        }, ct);
        await EnsureSuccessAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<ApiKeyVerificationResponse>(Json, ct))!;
    }

    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> create, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = create();
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await GetTokenAsync(ct));
            var response = await http.SendAsync(request, ct);
            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt > 1)
            {
                return response;
            }
            // Expired early, or signed with a key Member Center no longer publishes: get a new one once.
            response.Dispose();
            cache.Token = null;
        }
    }

    /// <summary>
    /// Fetches the service token (and opens the connection to Member Center) ahead of the first call that needs it:
    /// see <see cref="SendEngine.Features.WarmUp.StartupWarmUp"/>.
    /// </summary>
    public Task WarmUpAsync(CancellationToken ct) => GetTokenAsync(ct);

    private async Task<string> GetTokenAsync(CancellationToken ct)
    {
        if (cache.Token is { } cached && cached.ExpiresAt > clock.GetUtcNow())
        {
            return cached.Token;
        }
        await cache.Lock.WaitAsync(ct);
        try
        {
            if (cache.Token is { } again && again.ExpiresAt > clock.GetUtcNow())
            {
                return again.Token;
            }
            var o = options.Value;
            if (string.IsNullOrEmpty(o.ClientId) || string.IsNullOrEmpty(o.ClientSecret))
            {
                throw new MemberCenterException("MemberCenter:ClientId and MemberCenter:ClientSecret are not configured; Send Engine cannot read recipients.");
            }
            using var response = await http.PostAsync("oauth/token", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials",
                ["client_id"] = o.ClientId,
                ["client_secret"] = o.ClientSecret,
            }), ct);
            if (!response.IsSuccessStatusCode)
            {
                throw new MemberCenterException($"Member Center's token endpoint answered {(int)response.StatusCode}: {await ReadSnippetAsync(response, ct)}");
            }
            var token = (await response.Content.ReadFromJsonAsync<TokenResponse>(ct))!;
            var lifetime = TimeSpan.FromSeconds(Math.Max(token.ExpiresIn - 60, 10));
            cache.Token = (token.AccessToken, clock.GetUtcNow() + lifetime);
            return token.AccessToken;
        }
        finally
        {
            cache.Lock.Release();
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw new MemberCenterException(
                $"Member Center answered {(int)response.StatusCode} to {response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.AbsolutePath}: {await ReadSnippetAsync(response, ct)}",
                response.StatusCode);
        }
    }

    private static async Task<string> ReadSnippetAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStringAsync(ct);
        return body.Length > 500 ? body[..500] : body;
    }

    private static JsonSerializerOptions CreateJson()
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(json);
        return json;
    }

    private sealed record TokenResponse(
        [property: JsonPropertyName("access_token")] string AccessToken,
        [property: JsonPropertyName("expires_in")] int ExpiresIn);

    /// <summary>Whether <paramref name="ex"/> means Member Center could not answer (down, erroring, timed out), not that we were cancelled.</summary>
    public static bool IsOutage(Exception ex, CancellationToken ct) =>
        ex is MemberCenterException or HttpRequestException || (ex is OperationCanceledException && !ct.IsCancellationRequested);

    /// <summary>Whether the failure will not heal by itself: Member Center refuses Send Engine's credentials (401/403).</summary>
    public static bool NeedsOperator(Exception ex) =>
        ex is MemberCenterException { Status: System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden };
}

public sealed class MemberCenterException(string message, HttpStatusCode? status = null) : Exception(message)
{
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>Send Engine's current service token (a singleton; the typed client is transient).</summary>
public sealed class ServiceTokenCache
{
    internal SemaphoreSlim Lock { get; } = new(1, 1);
    internal (string Token, DateTimeOffset ExpiresAt)? Token { get; set; }
}
