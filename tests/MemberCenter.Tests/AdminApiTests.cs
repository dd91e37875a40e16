using System.Net;
using System.Net.Http.Json;
using MemberCenter.Features.Auth;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class AdminApiTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task Admin_creates_and_lists_tenants_lists_and_clients()
    {
        var tenant = await mc.CreateTenantAsync("Listed");
        using var admin = mc.Http(await mc.AdminTokenAsync());

        var tenants = await admin.GetFromJsonAsync<List<TenantResponse>>("admin/tenants", MemberCenterFixture.Json);
        Assert.Contains(tenants!, t => t.TenantId == tenant.TenantId && t.Name == "Listed");
        var lists = await admin.GetFromJsonAsync<List<MailingListResponse>>($"admin/tenants/{tenant.TenantId}/lists", MemberCenterFixture.Json);
        Assert.Equal([tenant.ListId], lists!.Select(l => l.ListId));
        var clients = await admin.GetFromJsonAsync<List<ApiClientResponse>>($"admin/tenants/{tenant.TenantId}/clients", MemberCenterFixture.Json);
        Assert.Equal([ClientUsages.SendApi, ClientUsages.TenantApi], clients!.Select(c => c.Usage).Order());
        Assert.All(clients!, c => Assert.False(c.Disabled));
        Assert.Contains(clients!, c => c.Usage == ClientUsages.SendApi && c.Scopes.SequenceEqual([Scopes.SendWrite, Scopes.SendRead, Scopes.Webhooks]));

        // The secret is shown once and never listed.
        var raw = await admin.GetStringAsync($"admin/tenants/{tenant.TenantId}/clients");
        Assert.DoesNotContain(tenant.SendClient.ClientSecret, raw);
        Assert.DoesNotContain("secret", raw);
    }

    [Fact]
    public async Task Rotating_a_secret_retires_the_old_one_and_disabling_stops_new_tokens()
    {
        var tenant = await mc.CreateTenantAsync();
        using var admin = mc.Http(await mc.AdminTokenAsync());
        var client = tenant.SendClient;

        var rotated = await MemberCenterFixture.ReadAsync<ApiClientSecretResponse>(await admin.PostAsync($"admin/clients/{client.ClientId}/rotate-secret", null));
        Assert.NotEqual(client.ClientSecret, rotated.ClientSecret);
        await TokenEndpointTests.AssertOAuthError(await mc.RequestTokenAsync(client.ClientId, client.ClientSecret), "invalid_client");
        await mc.TokenAsync(client.ClientId, rotated.ClientSecret);

        using var disable = await admin.PostAsync($"admin/clients/{client.ClientId}/disable", null);
        Assert.Equal(HttpStatusCode.NoContent, disable.StatusCode);
        await TokenEndpointTests.AssertOAuthError(await mc.RequestTokenAsync(client.ClientId, rotated.ClientSecret), "invalid_client");
        var clients = await admin.GetFromJsonAsync<List<ApiClientResponse>>($"admin/tenants/{tenant.TenantId}/clients", MemberCenterFixture.Json);
        Assert.True(clients!.Single(c => c.ClientId == client.ClientId).Disabled);
    }

    [Fact]
    public async Task A_configured_client_follows_its_configuration_when_seeded_again()
    {
        // run.sh's demo settings generated again (new clone, deleted .local) over a database with the old demo client.
        var before = await mc.CreateTenantAsync("Old demo");
        var now = await mc.CreateTenantAsync("New demo");
        var client = before.TenantClient.ClientId;
        var secret = ApiClientRegistry.NewSecret();
        await using (var scope = mc.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<ApiClientRegistry>()
                .EnsureAsync(client, Guid.Parse(now.TenantId), ClientUsages.TenantApi, "Demo tenant site", secret, TestContext.Current.CancellationToken);
        }

        var jwt = new JsonWebToken(await mc.TokenAsync(client, secret));
        Assert.Equal(now.TenantId, jwt.GetClaim("tenant_id").Value);
        await TokenEndpointTests.AssertOAuthError(await mc.RequestTokenAsync(client, before.TenantClient.ClientSecret), "invalid_client");
    }

    [Fact]
    public async Task Admin_api_validates_input_and_answers_404_for_unknown_ids()
    {
        using var admin = mc.Http(await mc.AdminTokenAsync());
        await NewsletterApiTests.AssertValidationError(await admin.PostAsJsonAsync("admin/tenants", new { }), "name");
        var tenant = await mc.CreateTenantAsync();
        await NewsletterApiTests.AssertValidationError(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/clients", new { usage = "root" }), "usage");
        using var noTenant = await admin.PostAsJsonAsync($"admin/tenants/{Guid.NewGuid()}/lists", new { name = "x" });
        Assert.Equal(HttpStatusCode.NotFound, noTenant.StatusCode);
        using var noClient = await admin.PostAsync("admin/clients/nobody/rotate-secret", null);
        Assert.Equal(HttpStatusCode.NotFound, noClient.StatusCode);
        // Platform clients come from configuration and are not managed here.
        using var platform = await admin.PostAsync($"admin/clients/{MemberCenterFixture.AdminClientId}/disable", null);
        Assert.Equal(HttpStatusCode.NotFound, platform.StatusCode);
    }

    [Fact]
    public async Task Only_the_platform_admin_reaches_the_admin_api()
    {
        var tenant = await mc.CreateTenantAsync();
        using var anonymous = mc.Http();
        using var none = await anonymous.GetAsync("admin/tenants");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var tenantApi = tenant.Api();
        using var forbidden = await tenantApi.GetAsync("admin/tenants");
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        using var service = mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));
        using var internalToken = await service.GetAsync("admin/tenants");
        Assert.Equal(HttpStatusCode.Forbidden, internalToken.StatusCode);
    }
}

[Collection(MemberCenterCollection.Name)]
public sealed class ListsApiTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task A_tenant_creates_and_reads_only_its_own_lists()
    {
        var a = await mc.CreateTenantAsync("A");
        var b = await mc.CreateTenantAsync("B");
        using var api = a.Api();
        var created = await MemberCenterFixture.ReadAsync<MailingListResponse>(await api.PostAsJsonAsync("api/lists", new { name = "Product news" }));
        Assert.Equal(a.TenantId, created.TenantId);

        var mine = await api.GetFromJsonAsync<List<MailingListResponse>>("api/lists", MemberCenterFixture.Json);
        Assert.Equal([a.ListId, created.ListId], mine!.Select(l => l.ListId));
        using var other = await api.GetAsync($"api/lists/{b.ListId}");
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        await NewsletterApiTests.AssertValidationError(await api.PostAsJsonAsync("api/lists", new { name = new string('x', 201) }), "name");

        var readOnly = await mc.TokenAsync(a.TenantClient.ClientId, a.TenantClient.ClientSecret, Scopes.ListsRead);
        using var reader = mc.Http(readOnly);
        using var forbidden = await reader.PostAsJsonAsync("api/lists", new { name = "x" });
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
    }
}
