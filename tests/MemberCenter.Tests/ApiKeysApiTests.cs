using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MemberCenter.Features.ApiKeys;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class ApiKeysApiTests(MemberCenterFixture mc)
{
    private static string Sha256Hex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private async Task<HttpClient> SendEngineAsync() =>
        mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));

    private static async Task<ApplicationResponse> CreateApplicationAsync(HttpClient api, string path = "api/applications", string name = "Shop") =>
        await MemberCenterFixture.ReadAsync<ApplicationResponse>(await api.PostAsJsonAsync(path, new CreateApplicationRequest(name), MemberCenterFixture.Json));

    private static async Task<ApiKeySecretResponse> CreateKeyAsync(HttpClient api, string appId, object body, string path = "api/applications") =>
        await MemberCenterFixture.ReadAsync<ApiKeySecretResponse>(await api.PostAsJsonAsync($"{path}/{appId}/keys", body, MemberCenterFixture.Json));

    private static async Task<ApiKeyVerificationResponse> VerifyAsync(HttpClient se, string key) =>
        await MemberCenterFixture.ReadAsync<ApiKeyVerificationResponse>(
            await se.PostAsJsonAsync("internal/api-keys/verify", new ApiKeyVerificationRequest(Sha256Hex(key)), MemberCenterFixture.Json));

    [Fact]
    public async Task Key_is_shown_once_and_stored_as_its_sha256()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var app = await CreateApplicationAsync(api);
        Assert.Equal(["email"], app.Channels);

        var key = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("server 1"));
        Assert.StartsWith(ApiKeyFormat.Prefix, key.ApiKey);
        Assert.Equal(ApiKeyFormat.Length, key.ApiKey.Length);
        Assert.True(Convert.FromBase64String(Base64(key.ApiKey[ApiKeyFormat.Prefix.Length..])).Length >= 16, "at least 128 random bits");
        Assert.Null(key.ExpiresAt);
        Assert.Equal(key.ApiKey[..ApiKeyFormat.DisplayLength], key.Prefix);

        // Listed without the key; the database holds only its SHA-256 and the prefix.
        var raw = await api.GetStringAsync($"api/applications/{app.ApplicationId}/keys");
        Assert.DoesNotContain(key.ApiKey, raw);
        Assert.DoesNotContain("api_key\"", raw);
        var listed = JsonSerializer.Deserialize<List<ApiKeyResponse>>(raw, MemberCenterFixture.Json)!;
        Assert.Equal(key.KeyId, Assert.Single(listed).KeyId);
        Assert.Equal(ApiKeyStatuses.Active, listed[0].Status);
        var row = await mc.WithDbAsync(db => db.Set<ApiKey>().AsNoTracking().SingleAsync(k => k.Id == Guid.Parse(key.KeyId)));
        Assert.Equal(Sha256Hex(key.ApiKey), row.KeyHash);
        var text = await mc.WithDbAsync(db => db.Database.SqlQuery<string>($"SELECT row_to_json(k)::text AS \"Value\" FROM api_keys k WHERE id = {row.Id}").SingleAsync());
        Assert.DoesNotContain(key.ApiKey, text);
        Assert.DoesNotContain(key.ApiKey[ApiKeyFormat.DisplayLength..], text);

        // A second key is different.
        var second = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("server 2"));
        Assert.NotEqual(key.ApiKey, second.ApiKey);
    }

    private static string Base64(string base64Url)
    {
        var s = base64Url.Replace('-', '+').Replace('_', '/');
        return s + new string('=', (4 - s.Length % 4) % 4);
    }

    [Fact]
    public async Task Expiry_is_unlimited_absolute_or_relative()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var app = await CreateApplicationAsync(api);
        var before = DateTimeOffset.UtcNow;

        var relative = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("90 days", ExpiresInDays: 90));
        Assert.InRange(relative.ExpiresAt!.Value, before.AddDays(90).AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(90).AddMinutes(1));

        var date = new DateTimeOffset(DateTime.UtcNow.Date.AddDays(30), TimeSpan.Zero);
        var absolute = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("until a date", ExpiresAt: date));
        Assert.Equal(date, absolute.ExpiresAt);

        foreach (var (body, field) in new (object, string)[]
        {
            (new CreateApiKeyRequest("both", date, 5), "expires_at"),
            (new CreateApiKeyRequest("past", DateTimeOffset.UtcNow.AddMinutes(-1)), "expires_at"),
            (new CreateApiKeyRequest("zero days", ExpiresInDays: 0), "expires_in_days"),
            (new CreateApiKeyRequest(""), "name"),
        })
        {
            using var bad = await api.PostAsJsonAsync($"api/applications/{app.ApplicationId}/keys", body, MemberCenterFixture.Json);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
            Assert.True(JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").TryGetProperty(field, out _), field);
        }

        // An expired key is listed as expired and verified as expired.
        var soon = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("soon", ExpiresAt: DateTimeOffset.UtcNow.AddSeconds(2)));
        using var se = await SendEngineAsync();
        Assert.Equal(ApiKeyStatuses.Active, (await VerifyAsync(se, soon.ApiKey)).Status);
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal(ApiKeyStatuses.Expired, (await VerifyAsync(se, soon.ApiKey)).Status);
        var listed = await api.GetFromJsonAsync<List<ApiKeyResponse>>($"api/applications/{app.ApplicationId}/keys", MemberCenterFixture.Json);
        Assert.Equal(ApiKeyStatuses.Expired, listed!.Single(k => k.KeyId == soon.KeyId).Status);
    }

    [Fact]
    public async Task Verification_names_the_owner_and_deleted_keys_answer_deleted()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var app = await CreateApplicationAsync(api);
        var key = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("k", ExpiresInDays: 10));
        using var se = await SendEngineAsync();

        var active = await VerifyAsync(se, key.ApiKey);
        Assert.Equal(new ApiKeyVerificationResponse(ApiKeyStatuses.Active, tenant.TenantId, app.ApplicationId, key.KeyId, key.ExpiresAt), active);
        // The use is recorded once, not per verification.
        var used = await mc.WithDbAsync(db => db.Set<ApiKey>().AsNoTracking().Where(k => k.Id == Guid.Parse(key.KeyId)).Select(k => k.LastUsedAt).SingleAsync());
        Assert.NotNull(used);
        await VerifyAsync(se, key.ApiKey);
        Assert.Equal(used, await mc.WithDbAsync(db => db.Set<ApiKey>().AsNoTracking().Where(k => k.Id == Guid.Parse(key.KeyId)).Select(k => k.LastUsedAt).SingleAsync()));
        var listed = await api.GetFromJsonAsync<List<ApiKeyResponse>>($"api/applications/{app.ApplicationId}/keys", MemberCenterFixture.Json);
        Assert.NotNull(listed!.Single().LastUsedAt);

        Assert.Equal(ApiKeyStatuses.Unknown, (await VerifyAsync(se, ApiKeyFormat.Prefix + new string('A', 43))).Status);

        using (var deleted = await api.DeleteAsync($"api/applications/{app.ApplicationId}/keys/{key.KeyId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        Assert.Equal(new ApiKeyVerificationResponse(ApiKeyStatuses.Deleted), await VerifyAsync(se, key.ApiKey));
        Assert.Empty((await api.GetFromJsonAsync<List<ApiKeyResponse>>($"api/applications/{app.ApplicationId}/keys", MemberCenterFixture.Json))!);
        using (var again = await api.DeleteAsync($"api/applications/{app.ApplicationId}/keys/{key.KeyId}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        }

        // Deleting the application deletes its keys.
        var other = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("k2"));
        using (var gone = await api.DeleteAsync($"api/applications/{app.ApplicationId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, gone.StatusCode);
        }
        Assert.Equal(ApiKeyStatuses.Deleted, (await VerifyAsync(se, other.ApiKey)).Status);

        // Tenant tokens cannot call the internal route; a malformed hash is a 400.
        using (var refused = await api.PostAsJsonAsync("internal/api-keys/verify", new ApiKeyVerificationRequest(Sha256Hex(key.ApiKey)), MemberCenterFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        using (var bad = await se.PostAsJsonAsync("internal/api-keys/verify", new ApiKeyVerificationRequest(key.ApiKey), MemberCenterFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
    }

    [Fact]
    public async Task Rotation_issues_a_new_key_and_ends_the_old_one_after_the_overlap()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var app = await CreateApplicationAsync(api);
        var old = await CreateKeyAsync(api, app.ApplicationId, new CreateApiKeyRequest("rotating", ExpiresInDays: 90));
        using var se = await SendEngineAsync();

        var rotated = await MemberCenterFixture.ReadAsync<ApiKeyRotationResponse>(
            await api.PostAsJsonAsync($"api/applications/{app.ApplicationId}/keys/{old.KeyId}/rotate", new RotateApiKeyRequest(OverlapHours: 2), MemberCenterFixture.Json));
        Assert.NotEqual(old.ApiKey, rotated.Key.ApiKey);
        Assert.Equal("rotating", rotated.Key.Name);
        // The new key gets the old one's 90-day lifetime again; the old one ends after the 2-hour overlap.
        Assert.InRange(rotated.Key.ExpiresAt!.Value, DateTimeOffset.UtcNow.AddDays(90).AddMinutes(-2), DateTimeOffset.UtcNow.AddDays(90).AddMinutes(2));
        Assert.InRange(rotated.Previous.ExpiresAt!.Value, DateTimeOffset.UtcNow.AddHours(2).AddMinutes(-2), DateTimeOffset.UtcNow.AddHours(2).AddMinutes(2));
        Assert.Equal(ApiKeyStatuses.Active, (await VerifyAsync(se, old.ApiKey)).Status);
        Assert.Equal(ApiKeyStatuses.Active, (await VerifyAsync(se, rotated.Key.ApiKey)).Status);

        // Without overlap the old key stops at once.
        var again = await MemberCenterFixture.ReadAsync<ApiKeyRotationResponse>(
            await api.PostAsJsonAsync($"api/applications/{app.ApplicationId}/keys/{rotated.Key.KeyId}/rotate", new RotateApiKeyRequest(OverlapHours: 0), MemberCenterFixture.Json));
        Assert.Equal(ApiKeyStatuses.Expired, (await VerifyAsync(se, rotated.Key.ApiKey)).Status);
        Assert.Equal(ApiKeyStatuses.Active, (await VerifyAsync(se, again.Key.ApiKey)).Status);
    }

    [Fact]
    public async Task Another_tenants_applications_and_keys_are_not_found()
    {
        var owner = await mc.CreateTenantAsync();
        var intruder = await mc.CreateTenantAsync();
        using var ownerApi = owner.Api();
        using var intruderApi = intruder.Api();
        var app = await CreateApplicationAsync(ownerApi);
        var key = await CreateKeyAsync(ownerApi, app.ApplicationId, new CreateApiKeyRequest("k"));

        Assert.Empty((await intruderApi.GetFromJsonAsync<List<ApplicationResponse>>("api/applications", MemberCenterFixture.Json))!);
        var attempts = new List<HttpRequestMessage>
        {
            new(HttpMethod.Get, $"api/applications/{app.ApplicationId}"),
            new(HttpMethod.Get, $"api/applications/{app.ApplicationId}/keys"),
            new(HttpMethod.Post, $"api/applications/{app.ApplicationId}/keys") { Content = JsonContent.Create(new CreateApiKeyRequest("x"), options: MemberCenterFixture.Json) },
            new(HttpMethod.Delete, $"api/applications/{app.ApplicationId}/keys/{key.KeyId}"),
            new(HttpMethod.Post, $"api/applications/{app.ApplicationId}/keys/{key.KeyId}/rotate") { Content = JsonContent.Create(new RotateApiKeyRequest(), options: MemberCenterFixture.Json) },
            new(HttpMethod.Delete, $"api/applications/{app.ApplicationId}"),
        };
        foreach (var attempt in attempts)
        {
            using var response = await intruderApi.SendAsync(attempt);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{attempt.Method} {attempt.RequestUri}: {(int)response.StatusCode}");
        }

        // The admin route names the tenant: the owner's application under the intruder's tenant is not found either.
        using var admin = mc.Http(await mc.AdminTokenAsync());
        using (var wrongTenant = await admin.GetAsync($"admin/tenants/{intruder.TenantId}/applications/{app.ApplicationId}/keys"))
        {
            Assert.Equal(HttpStatusCode.NotFound, wrongTenant.StatusCode);
        }
        using (var noTenant = await admin.PostAsJsonAsync($"admin/tenants/{Guid.NewGuid()}/applications", new CreateApplicationRequest("x"), MemberCenterFixture.Json))
        {
            Assert.Equal(HttpStatusCode.NotFound, noTenant.StatusCode);
        }
        using var se = await SendEngineAsync();
        Assert.Equal(ApiKeyStatuses.Active, (await VerifyAsync(se, key.ApiKey)).Status);
    }

    [Fact]
    public async Task Admin_manages_a_tenants_applications_and_keys()
    {
        var tenant = await mc.CreateTenantAsync();
        using var admin = mc.Http(await mc.AdminTokenAsync());
        var path = $"admin/tenants/{tenant.TenantId}/applications";
        var app = await CreateApplicationAsync(admin, path, "Back office");
        Assert.Equal(tenant.TenantId, app.TenantId);
        var key = await CreateKeyAsync(admin, app.ApplicationId, new CreateApiKeyRequest("ops", ExpiresInDays: 30), path);
        var rotated = await MemberCenterFixture.ReadAsync<ApiKeyRotationResponse>(
            await admin.PostAsJsonAsync($"{path}/{app.ApplicationId}/keys/{key.KeyId}/rotate", new RotateApiKeyRequest(), MemberCenterFixture.Json));
        var keys = await admin.GetFromJsonAsync<List<ApiKeyResponse>>($"{path}/{app.ApplicationId}/keys", MemberCenterFixture.Json);
        Assert.Equal([key.KeyId, rotated.Key.KeyId], keys!.Select(k => k.KeyId));
        using (var deleted = await admin.DeleteAsync($"{path}/{app.ApplicationId}/keys/{key.KeyId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        // The tenant sees what the admin made.
        using var api = tenant.Api();
        var own = await api.GetFromJsonAsync<List<ApiKeyResponse>>($"api/applications/{app.ApplicationId}/keys", MemberCenterFixture.Json);
        Assert.Equal([rotated.Key.KeyId], own!.Select(k => k.KeyId));

        // The tenant routes need the api_keys scopes: a token with only lists scopes is refused.
        using var narrow = mc.Http(await mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret, Scopes.ListsRead));
        using var refused = await narrow.GetAsync("api/applications");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }
}
