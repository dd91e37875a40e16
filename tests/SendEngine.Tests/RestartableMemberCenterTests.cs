using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

public sealed class RestartableMemberCenterTests(StackFixture stack)
{
    [Fact]
    public async Task A_stopped_Member_Center_refuses_connections_and_after_a_restart_issues_tokens_and_answers_the_internal_API()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"restart@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        await using var mc = await RestartableMemberCenter.StartAsync(stack);
        var url = mc.Url;

        async Task<IReadOnlyList<string>> RecipientsAsync()
        {
            var token = await mc.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret);
            Assert.Equal(url + "/", Issuer(token));
            using var client = mc.Client(token);
            var page = await client.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}&limit=10", StackFixture.Json);
            return page!.Items.Select(r => r.Email).ToList();
        }

        Assert.Equal([email], await RecipientsAsync());

        await mc.StopAsync();

        Assert.False(mc.IsRunning);
        Assert.False(await FreePort.IsAcceptingAsync(mc.Port, TestContext.Current.CancellationToken));
        using (var http = new HttpClient { BaseAddress = new Uri(url + "/") })
        {
            var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(".well-known/jwks"));
            Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(refused.InnerException).SocketErrorCode);
        }

        await mc.StartAsync();

        Assert.Equal(url, mc.Url);
        Assert.Equal([email], await RecipientsAsync());
        // The tenant's own client too: same database, same clients.
        Assert.Equal(url + "/", Issuer(await mc.SendTokenAsync(tenant)));
    }

    private static string Issuer(string jwt)
    {
        var payload = jwt.Split('.')[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
        return JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(payload))).RootElement.GetProperty("iss").GetString()!;
    }
}
