using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>X-Forwarded-For is believed only from a configured proxy (the consent audit records the client's address).</summary>
public sealed class ForwardedHeadersTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _behindProxy = new(postgres, mail);
    private readonly MemberCenterFixture _direct = new(postgres, mail);

    public async ValueTask InitializeAsync()
    {
        _behindProxy.Settings["ForwardedHeaders:KnownProxies:0"] = "127.0.0.1";
        await _behindProxy.InitializeAsync();
        await _direct.InitializeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await ((IAsyncDisposable)_behindProxy).DisposeAsync();
        await ((IAsyncDisposable)_direct).DisposeAsync();
    }

    [Fact]
    public async Task The_audit_records_the_forwarded_address_only_behind_a_configured_proxy()
    {
        Assert.Equal("203.0.113.7", await SubscribeThroughProxyAsync(_behindProxy));
        // Without configuration the header is anyone's to send, so it is ignored.
        Assert.Equal("127.0.0.1", await SubscribeThroughProxyAsync(_direct));
    }

    private static async Task<string?> SubscribeThroughProxyAsync(MemberCenterFixture mc)
    {
        var tenant = await mc.CreateTenantAsync();
        var email = $"proxied-{Guid.NewGuid():N}@example.com";
        using var api = tenant.Api();
        using var request = new HttpRequestMessage(HttpMethod.Post, "newsletter/subscribe")
        {
            Content = JsonContent.Create(new { list_id = tenant.ListId, email }),
        };
        request.Headers.Add("X-Forwarded-For", "203.0.113.7");
        using var response = await api.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        return await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.ListId == Guid.Parse(tenant.ListId)).Select(c => c.IpAddress).SingleAsync());
    }
}
