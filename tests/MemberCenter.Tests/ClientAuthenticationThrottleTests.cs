using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>
/// A Member Center allowing 3 failed client authentications per address and client_id, and 5 per client_id from all
/// addresses, per minute. It believes X-Forwarded-For from 127.0.0.1, so a test can speak from many addresses.
/// </summary>
[LongRunning(115)]
public sealed class ClientAuthenticationThrottleTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        _mc.Settings["Auth:FailedClientAuthenticationLimit"] = "3";
        _mc.Settings["Auth:FailedClientAuthenticationLimitPerClient"] = "5";
        _mc.Settings["ForwardedHeaders:KnownProxies:0"] = "127.0.0.1";
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
    public async Task Failures_count_per_client_across_addresses_so_rotating_addresses_does_not_bypass_the_limit()
    {
        var tenant = await _mc.CreateTenantAsync();
        var client = tenant.SendClient;

        // One address over its own limit is refused; the client's other addresses are not (3 failures < 5).
        for (var i = 0; i < 3; i++)
        {
            await TokenEndpointTests.AssertOAuthError(await RequestFromAsync("2001:db8:1::1", client.ClientId, "wrong-secret"), "invalid_client");
        }
        using (var blockedAddress = await RequestFromAsync("2001:db8:1::1", client.ClientId, client.ClientSecret))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, blockedAddress.StatusCode);
        }

        // Two more failures, each from a fresh IPv6 address, reach the client's limit of 5.
        await TokenEndpointTests.AssertOAuthError(await RequestFromAsync("2001:db8:2::1", client.ClientId, "wrong-secret"), "invalid_client");
        await TokenEndpointTests.AssertOAuthError(await RequestFromAsync("2001:db8:2::2", client.ClientId, "wrong-secret"), "invalid_client");
        // From then on no address gets a secret checked for this client, not even a new one with the right secret.
        foreach (var address in new[] { "2001:db8:2::3", "2001:db8:3::1", "198.51.100.9" })
        {
            using var refused = await RequestFromAsync(address, client.ClientId, client.ClientSecret);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        }
        // Other clients are unaffected.
        using var other = await RequestFromAsync("2001:db8:2::3", tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task A_parallel_burst_of_wrong_secrets_runs_no_more_secret_checks_than_the_limit()
    {
        var tenant = await _mc.CreateTenantAsync();
        var client = tenant.SendClient;

        var answers = await Task.WhenAll(Enumerable.Range(0, 60).Select(async _ =>
        {
            using var response = await _mc.RequestTokenAsync(client.ClientId, "wrong-secret");
            return response.StatusCode;
        }));

        // invalid_client (401) means the secret was hashed and compared; every other request was refused before.
        Assert.Equal(3, answers.Count(s => s == HttpStatusCode.Unauthorized));
        Assert.Equal(57, answers.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task A_secret_verified_before_costs_no_check_and_still_gets_tokens_while_the_client_is_blocked()
    {
        var tenant = await _mc.CreateTenantAsync();
        var client = tenant.SendClient;
        Assert.NotEmpty(await _mc.TokenAsync(client.ClientId, client.ClientSecret));
        for (var i = 0; i < 5; i++)
        {
            await TokenEndpointTests.AssertOAuthError(await RequestFromAsync($"2001:db8:9::{i + 1}", client.ClientId, "wrong-secret"), "invalid_client");
        }
        using (var wrong = await RequestFromAsync("2001:db8:9::99", client.ClientId, "another-wrong-secret"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, wrong.StatusCode);
        }
        // An attacker failing from many addresses cannot lock out the client's servers that already authenticated.
        Assert.NotEmpty(await _mc.TokenAsync(client.ClientId, client.ClientSecret));
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

    /// <summary>A token request as if from <paramref name="address"/>, through the proxy Member Center believes.</summary>
    private async Task<HttpResponseMessage> RequestFromAsync(string address, string clientId, string secret)
    {
        using var http = _mc.Http();
        using var request = new HttpRequestMessage(HttpMethod.Post, "oauth/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret,
            }),
        };
        request.Headers.Add("X-Forwarded-For", address);
        return await http.SendAsync(request, TestContext.Current.CancellationToken);
    }
}
