using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Serilog.Core;
using Serilog.Events;

namespace MemberCenter.Tests;

/// <summary>What Member Center logs while secrets and tokens cross it holds none of them (issue 3, operability).</summary>
public sealed class LogSecrecyTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);
    // Started after _mc, as parallel tests do: Serilog's static logger is then this host's, and _mc's request log must
    // still reach _mc's sinks.
    private readonly MemberCenterFixture _later = new(postgres, mail);
    private readonly KeepingSink _logs = new();

    public async ValueTask InitializeAsync()
    {
        _mc.Settings["Serilog:MinimumLevel:Default"] = "Debug";
        _mc.ExtraServices = s => s.AddSingleton<ILogEventSink>(_logs);
        await _mc.InitializeAsync();
        await _later.InitializeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await ((IAsyncDisposable)_later).DisposeAsync();
        await ((IAsyncDisposable)_mc).DisposeAsync();
    }

    [Fact]
    public async Task Client_secrets_access_tokens_and_link_tokens_never_reach_the_logs()
    {
        var tenant = await _mc.CreateTenantAsync();
        var secret = tenant.TenantClient.ClientSecret;
        using (var http = _mc.Http())
        {
            // client_secret_basic, a wrong secret, and an unknown grant type: the failure paths log too.
            using var basic = new HttpRequestMessage(HttpMethod.Post, "oauth/token") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials" }) };
            basic.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant.TenantClient.ClientId}:{secret}")));
            (await http.SendAsync(basic)).EnsureSuccessStatusCode();
        }
        using (await _mc.RequestTokenAsync(tenant.TenantClient.ClientId, secret + "x"))
        using (await _mc.RequestTokenAsync(tenant.TenantClient.ClientId, secret, grantType: "password"))
        {
        }
        var email = $"quiet-{Guid.NewGuid():N}@example.com";
        var subscribed = await tenant.SubscribeAsync(email);
        await tenant.ConfirmAsync(subscribed.ConfirmToken!);
        var unsubscribeToken = await tenant.UnsubscribeTokenAsync(email);
        using (var http = _mc.Http())
        {
            (await http.GetAsync($"newsletter/unsubscribe?token={unsubscribeToken}")).EnsureSuccessStatusCode();
            using var oneClick = await http.PostAsync($"newsletter/unsubscribe?token={unsubscribeToken}",
                new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }));
            oneClick.EnsureSuccessStatusCode();
        }
        // A stateless link and a derived link key (Send Engine's routes).
        var other = $"quiet-{Guid.NewGuid():N}@example.com";
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(other)).ConfirmToken!);
        string linkMac, linkKey;
        using (var se = _mc.Http(await _mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret)))
        {
            var page = await MemberCenterFixture.ReadAsync<RecipientPage>(await se.GetAsync($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}"));
            var url = (await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId))(page.Items.Single(r => r.Email == other).SubscriberId);
            linkMac = url[(url.LastIndexOf('.') + 1)..];
            using var http = _mc.Http();
            (await http.GetAsync(url)).EnsureSuccessStatusCode();
            linkKey = (await MemberCenterFixture.ReadAsync<LinkKeyResponse>(await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key",
                new LinkKeyRequest(tenant.TenantId), MemberCenterFixture.Json))).Key;
        }

        var logged = _logs.Text();
        Assert.Contains("/newsletter/unsubscribe", logged, StringComparison.Ordinal); // the request log did run
        foreach (var (what, value) in new[]
        {
            ("client secret", secret),
            ("bootstrap admin secret", MemberCenterFixture.AdminClientSecret),
            ("access token", tenant.TenantToken),
            ("access token signature", tenant.TenantToken[(tenant.TenantToken.LastIndexOf('.') + 1)..]),
            ("confirm token", subscribed.ConfirmToken!),
            ("unsubscribe token", unsubscribeToken),
            ("stateless link MAC", linkMac),
            ("derived link key", linkKey),
        })
        {
            Assert.False(logged.Contains(value, StringComparison.Ordinal), $"the {what} was logged");
        }
    }

    /// <summary>Every event with its properties, as text.</summary>
    private sealed class KeepingSink : ILogEventSink
    {
        private readonly ConcurrentQueue<string> _events = new();

        public void Emit(LogEvent logEvent) => _events.Enqueue(string.Create(CultureInfo.InvariantCulture,
            $"{logEvent.RenderMessage(CultureInfo.InvariantCulture)} {string.Join(' ', logEvent.Properties.Select(p => $"{p.Key}={p.Value}"))} {logEvent.Exception}"));

        public string Text() => string.Join('\n', _events);
    }
}
