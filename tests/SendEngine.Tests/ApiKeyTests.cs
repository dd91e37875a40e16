using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.Transactional;

namespace SendEngine.Tests;

/// <summary>X-Pigeon-Api-Key at Send Engine: keys made through Member Center's tenant API, checked through GET /api/v1/api-key.</summary>
public sealed class ApiKeyTests(StackFixture stack)
{
    private const string Header = "X-Pigeon-Api-Key";

    private async Task<(TestTenant Tenant, HttpClient Site, ApplicationResponse App)> ApplicationAsync()
    {
        var tenant = await stack.CreateTenantAsync("Keys");
        var site = stack.MemberCenterAdminClient(await stack.TokenAsync(tenant.TenantClientId, tenant.TenantClientSecret, Scopes.ApiKeysWrite + " " + Scopes.ApiKeysRead));
        var app = await StackFixture.PostAsync<ApplicationResponse>(site, "api/applications", new CreateApplicationRequest("Shop"));
        return (tenant, site, app);
    }

    private static Task<ApiKeySecretResponse> KeyAsync(HttpClient site, ApplicationResponse app, CreateApiKeyRequest? request = null) =>
        StackFixture.PostAsync<ApiKeySecretResponse>(site, $"api/applications/{app.ApplicationId}/keys", request ?? new CreateApiKeyRequest("server"));

    private static async Task<HttpResponseMessage> CallAsync(HttpClient se, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/api-key");
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation(Header, key);
        }
        return await se.SendAsync(request);
    }

    /// <summary>The seed's error body: exactly {"error": {"code", "name", "message"}}.</summary>
    private static async Task<TransactionalErrorBody> ErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var root = JsonDocument.Parse(text).RootElement;
        Assert.Equal(["error"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["code", "name", "message"], root.GetProperty("error").EnumerateObject().Select(p => p.Name));
        return JsonSerializer.Deserialize<TransactionalErrorResponse>(text, StackFixture.Json)!.Error;
    }

    [Fact]
    public async Task A_valid_key_names_its_application_and_a_missing_or_unknown_key_is_INVALID_API_KEY()
    {
        var (tenant, site, app) = await ApplicationAsync();
        using var _ = site;
        var key = await KeyAsync(site, app, new CreateApiKeyRequest("server", ExpiresInDays: 30));
        using var se = stack.SendEngineClient();

        using (var ok = await CallAsync(se, key.ApiKey))
        {
            var info = await StackFixture.ReadAsync<ApiKeyInfoResponse>(ok, HttpStatusCode.OK);
            Assert.Equal(new ApiKeyInfoResponse(tenant.TenantId, app.ApplicationId, key.KeyId, key.ExpiresAt), info);
        }
        foreach (var bad in new[] { null, "", "not-a-key", ApiKeyFormat.Prefix + new string('x', 43), key.ApiKey[..^1] + (key.ApiKey[^1] == 'A' ? 'B' : 'A') })
        {
            using var refused = await CallAsync(se, bad);
            var error = await ErrorAsync(refused, HttpStatusCode.Forbidden);
            Assert.Equal((10, TransactionalErrorNames.InvalidApiKey), (error.Code, error.Name));
            Assert.DoesNotContain(key.ApiKey, error.Message);
        }
        // A bearer token is not an API key.
        using var withBearer = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        using var bearerOnly = await CallAsync(withBearer, null);
        Assert.Equal(10, (await ErrorAsync(bearerOnly, HttpStatusCode.Forbidden)).Code);
    }

    [Fact]
    public async Task A_deleted_key_is_refused_with_EXPIRED_API_KEY_within_30_seconds()
    {
        var (_, site, app) = await ApplicationAsync();
        using var _ = site;
        var key = await KeyAsync(site, app);
        using var se = stack.SendEngineClient();
        using (var ok = await CallAsync(se, key.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode); // now cached as valid
        }

        using (var deleted = await site.DeleteAsync($"api/applications/{app.ApplicationId}/keys/{key.KeyId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        var sw = Stopwatch.StartNew();
        TransactionalErrorBody? error = null;
        while (error is null && sw.Elapsed < TimeSpan.FromSeconds(40))
        {
            using var response = await CallAsync(se, key.ApiKey);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                error = await ErrorAsync(response, HttpStatusCode.Forbidden);
            }
            else
            {
                await Task.Delay(250);
            }
        }
        Assert.NotNull(error);
        Assert.True(sw.Elapsed <= TimeSpan.FromSeconds(30), $"refused only after {sw.Elapsed}");
        Assert.Equal((11, TransactionalErrorNames.ExpiredApiKey), (error.Code, error.Name));
        // And it stays refused (the negative answer is cached too).
        using var again = await CallAsync(se, key.ApiKey);
        Assert.Equal(TransactionalErrorNames.ExpiredApiKey, (await ErrorAsync(again, HttpStatusCode.Forbidden)).Name);
    }

    [Fact]
    public async Task A_keys_expiry_is_honoured_inside_the_cache_window()
    {
        var (_, site, app) = await ApplicationAsync();
        using var _ = site;
        var key = await KeyAsync(site, app, new CreateApiKeyRequest("short", ExpiresAt: DateTimeOffset.UtcNow.AddSeconds(4)));
        using var se = stack.SendEngineClient();
        using (var ok = await CallAsync(se, key.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        // Send Engine caches the answer for 15 s, far past the expiry: the expiry itself must end it.
        var wait = key.ExpiresAt!.Value - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }
        using var expired = await CallAsync(se, key.ApiKey);
        Assert.Equal((11, TransactionalErrorNames.ExpiredApiKey), await ErrorAsync(expired, HttpStatusCode.Forbidden) is var e ? (e.Code, e.Name) : default);
    }

    [Fact]
    public async Task Invalid_keys_are_throttled_per_address_while_known_keys_still_pass()
    {
        var (_, site, app) = await ApplicationAsync();
        using var _ = site;
        var key = await KeyAsync(site, app);
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["ApiKeys:FailedKeyLimit"] = "3",
            ["ApiKeys:FailedKeyWindow"] = "00:01:00",
        });
        using var se = engine.CreateClient();
        using (var ok = await CallAsync(se, key.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        for (var i = 0; i < 3; i++)
        {
            using var refused = await CallAsync(se, ApiKeyFormat.Prefix + Convert.ToHexString(Guid.NewGuid().ToByteArray()).PadRight(43, 'a'));
            Assert.Equal(10, (await ErrorAsync(refused, HttpStatusCode.Forbidden)).Code);
        }
        using (var throttled = await CallAsync(se, ApiKeyFormat.Prefix + new string('b', 43)))
        {
            var error = await ErrorAsync(throttled, (HttpStatusCode)429);
            Assert.Equal((12, TransactionalErrorNames.TooManyFailedApiKeys), (error.Code, error.Name));
            Assert.True(throttled.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After");
        }
        // A key already known valid is not held back; a missing key is not a guess and is not counted.
        using (var still = await CallAsync(se, key.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, still.StatusCode);
        }
        using var missing = await CallAsync(se, null);
        Assert.Equal(10, (await ErrorAsync(missing, HttpStatusCode.Forbidden)).Code);
    }

    [Fact]
    public async Task Member_Center_down_is_503_in_the_seed_shape_and_cached_keys_keep_working()
    {
        await using var mc = await RestartableMemberCenter.StartAsync(stack);
        var (_, site, app) = await ApplicationAsync();
        using var _ = site;
        var cached = await KeyAsync(site, app);
        var uncached = await KeyAsync(site, app);
        await using var engine = new SendEngineFactory(mc.SendEngineSettings(stack, await stack.CreateSendEngineDatabaseAsync(),
            new Dictionary<string, string?> { ["ApiKeys:CacheDuration"] = "00:00:30" }));
        using var se = engine.CreateClient();
        using (var ok = await CallAsync(se, cached.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        await mc.StopAsync();

        using (var stillOk = await CallAsync(se, cached.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, stillOk.StatusCode);
        }
        using var unavailable = await CallAsync(se, uncached.ApiKey);
        Assert.Equal((2, TransactionalErrorNames.ServiceUnavailable), await ErrorAsync(unavailable, HttpStatusCode.ServiceUnavailable) is var e ? (e.Code, e.Name) : default);
    }

    [Fact]
    public async Task Swagger_marks_the_api_key_routes_with_the_header_scheme()
    {
        using var se = stack.SendEngineClient();
        se.DefaultRequestHeaders.Authorization = StackFixture.ManagementAuthorization;
        var doc = JsonDocument.Parse(await se.GetStringAsync("swagger/v1/swagger.json")).RootElement;
        var scheme = doc.GetProperty("components").GetProperty("securitySchemes").GetProperty("api_key");
        Assert.Equal(("apiKey", "header", Header), (scheme.GetProperty("type").GetString(), scheme.GetProperty("in").GetString(), scheme.GetProperty("name").GetString()));
        var security = doc.GetProperty("paths").GetProperty("/api/v1/api-key").GetProperty("get").GetProperty("security");
        Assert.Equal(["api_key"], security.EnumerateArray().SelectMany(r => r.EnumerateObject().Select(p => p.Name)));
    }
}
