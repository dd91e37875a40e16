using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>A Member Center allowing 3 failed client authentications per address and client_id per minute.</summary>
public sealed class ClientAuthenticationThrottleTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        _mc.Settings["Auth:FailedClientAuthenticationLimit"] = "3";
        return _mc.InitializeAsync();
    }

    public ValueTask DisposeAsync() => ((IAsyncDisposable)_mc).DisposeAsync();

    [Fact]
    public async Task After_the_limit_of_wrong_secrets_the_client_gets_429_even_with_the_right_one_and_other_clients_are_unaffected()
    {
        var tenant = await _mc.CreateTenantAsync();
        var client = tenant.SendClient;
        for (var i = 0; i < 3; i++)
        {
            await TokenEndpointTests.AssertOAuthError(await _mc.RequestTokenAsync(client.ClientId, "wrong-secret"), "invalid_client");
        }

        using (var blocked = await _mc.RequestTokenAsync(client.ClientId, client.ClientSecret))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
            Assert.True(blocked.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            using var body = JsonDocument.Parse(await blocked.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
            Assert.Equal("temporarily_unavailable", body.RootElement.GetProperty("error").GetString());
        }
        // The same client through client_secret_basic is the same caller.
        using (var http = _mc.Http())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "oauth/token")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials" }),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(client.ClientId)}:{Uri.EscapeDataString(client.ClientSecret)}")));
            using var basic = await http.SendAsync(request, TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.TooManyRequests, basic.StatusCode);
        }

        // Another client from the same address still gets tokens.
        Assert.NotEmpty(await _mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret));
    }

    [Fact]
    public async Task Successful_requests_do_not_count()
    {
        var tenant = await _mc.CreateTenantAsync();
        for (var i = 0; i < 10; i++)
        {
            Assert.NotEmpty(await _mc.TokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret));
        }
    }
}
