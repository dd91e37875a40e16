using System.Text;
using System.Text.Json;
using Microsoft.Playwright;

namespace Console.Tests;

/// <summary>
/// Issue 15, part 1: the Webhook gateway page in chromium. An admin sends a test event and sees request, response and its
/// log entry, turns ingestion off and on; the live log shows a callback posted meanwhile without a reload; viewers read
/// without controls; another tenant's entry is a 404; a post without the antiforgery token is refused; axe passes.
/// </summary>
public sealed class WebhookGatewayConsoleTests(ConsoleFixture fx)
{
    [Fact]
    public async Task An_admin_sends_a_test_event_sees_request_response_and_entry_and_switches_ingestion()
    {
        await fx.WithPageAsync(fx.Admin, async page =>
        {
            var response = await page.GotoAsync("/webhook-gateway");
            Assert.Equal(200, response!.Status);
            await page.AssertAccessibleAsync("/webhook-gateway");

            await page.SelectOptionAsync("#test-type", "hard_bounce");
            await page.ClickAsync("#send-test");
            await page.WaitForSelectorAsync("#test-result");
            var result = await page.TextContentAsync("#test-result") ?? "";
            Assert.Contains("POST http://", result, StringComparison.Ordinal);
            Assert.Contains("/api/tencent/ses/webhook", result, StringComparison.Ordinal);
            Assert.Contains("\"bounceType\":\"Permanent\"", result, StringComparison.Ordinal);
            Assert.Contains("\"stored\":1", result, StringComparison.Ordinal);
            Assert.Equal("test", await page.TextContentAsync("#test-outcome"));
            await page.AssertAccessibleAsync("/webhook-gateway (test result)");

            // Its entry: headers, body and what it changed (a test event changes nothing real).
            await page.ClickAsync("#test-result a:has-text('log entry')");
            await page.WaitForSelectorAsync("#entry-changes");
            Assert.Contains("test", await page.TextContentAsync("#entry-changes"));
            Assert.Contains("Permanent", await page.TextContentAsync("#entry-body"));
            await page.AssertAccessibleAsync("/webhook-gateway/events/{id}");

            await page.GotoAsync("/webhook-gateway");
            Assert.Contains("on", await page.TextContentAsync("#ingestion-state"));
            await page.ClickAsync("#toggle-ingestion");
            await page.WaitForSelectorAsync("#notice:has-text('Ingestion is off')");
            Assert.Contains("off", await page.TextContentAsync("#ingestion-state"));
            await page.ClickAsync("#toggle-ingestion");
            await page.WaitForSelectorAsync("#notice:has-text('Ingestion is on')");
        });
    }

    [Fact]
    public async Task The_live_log_shows_a_new_callback_without_a_reload()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            await page.GotoAsync("/webhook-gateway");
            // The relay is open once Send Engine has registered the watcher; give the EventSource a moment to connect.
            await page.WaitForTimeoutAsync(1500);
            var entryId = await PostCallbackAsync(fx.TenantA.TenantId);
            var row = $"#gateway-events tr[data-entry-id='{entryId}']";
            await page.WaitForSelectorAsync(row, new() { Timeout = 30_000 });
            await page.WaitForSelectorAsync("#gateway-live:has-text('Live')");
            await page.AssertAccessibleAsync("/webhook-gateway (live)");
            // The stream carries the table's columns only (source, verification, status, event types, result) ...
            var cells = await page.Locator($"{row} td").AllTextContentsAsync();
            Assert.Equal(["tencent_webhook", "unverified", "200", "open"], cells.Skip(1).Take(4));
            Assert.Contains(cells[5], new[] { "pending", "no_effect" });
            // ... and the row opens the entry's detail, read when it is opened: headers and body.
            await page.ClickAsync($"{row} a");
            await page.WaitForSelectorAsync("#entry-body");
            Assert.Contains("gateway-test.", await page.TextContentAsync("#entry-body"));
            Assert.Contains("Content-Type", await page.TextContentAsync("#entry-headers"));
        });
    }

    [Fact]
    public async Task Viewers_read_without_controls_other_tenants_entries_are_404_and_posts_without_the_token_are_refused()
    {
        var entryId = await PostCallbackAsync(fx.TenantA.TenantId);
        // Attributed to tenant A by the processor.
        await fx.WithPageAsync(fx.Owner, async owner =>
        {
            for (var i = 0; i < 100; i++)
            {
                var r = await owner.APIRequest.GetAsync($"/webhook-gateway/events/{entryId}", new() { MaxRedirects = 0 });
                if (r.Status == 200)
                {
                    break;
                }
                await Task.Delay(200);
            }
        });

        await fx.WithPageAsync(fx.Viewer, async viewer =>
        {
            var list = await viewer.GotoAsync("/webhook-gateway");
            Assert.Equal(200, list!.Status);
            Assert.Equal(0, await viewer.Locator("#send-test").CountAsync());
            Assert.Equal(0, await viewer.Locator("#toggle-ingestion").CountAsync());
            Assert.Equal(0, await viewer.Locator("#gateway-attempts button").CountAsync());
            var detail = await viewer.GotoAsync($"/webhook-gateway/events/{entryId}");
            Assert.Equal(200, detail!.Status);
            await viewer.AssertAccessibleAsync("/webhook-gateway/events/{id} (viewer)");
        });

        await fx.WithPageAsync(fx.OwnerOfB, async stranger =>
        {
            var response = await stranger.APIRequest.GetAsync($"/webhook-gateway/events/{entryId}", new() { MaxRedirects = 0 });
            Assert.Equal(404, response.Status);
            Assert.DoesNotContain(entryId, await response.TextAsync());
        });

        // CSRF: the admin's session cookie without the antiforgery token does not switch ingestion off.
        var context = await fx.SignedInAsync(fx.Admin);
        var form = context.APIRequest.CreateFormData();
        form.Set("enabled", "false");
        var forged = await context.APIRequest.PostAsync("/webhook-gateway?handler=Ingestion", new() { Form = form, MaxRedirects = 0 });
        Assert.Equal(400, forged.Status);
        await context.WithPageAsync(async page =>
        {
            await page.GotoAsync("/webhook-gateway");
            Assert.Contains("on", await page.TextContentAsync("#ingestion-state"));
        });
    }

    [Fact]
    public async Task An_operator_watches_the_platform_log_live_and_opens_an_entry_and_tenant_people_are_refused()
    {
        await fx.WithPageAsync(fx.Operator, async page =>
        {
            var response = await page.GotoAsync("/webhook-gateway/platform");
            Assert.Equal(200, response!.Status);
            await page.AssertAccessibleAsync("/webhook-gateway/platform");
            // Live: a callback naming no message of this platform stays in the platform log and appears without a reload.
            await page.WaitForTimeoutAsync(1500);
            var entryId = await PostPlatformCallbackAsync($"no-such-message-{Guid.NewGuid():N}");
            var row = $"#gateway-events tr[data-entry-id='{entryId}']";
            await page.WaitForSelectorAsync(row, new() { Timeout = 30_000 });
            await page.WaitForSelectorAsync("#gateway-live:has-text('Live')");
            await page.AssertAccessibleAsync("/webhook-gateway/platform (live)");

            await page.ClickAsync($"{row} a");
            await page.WaitForSelectorAsync("#entry-body");
            Assert.Contains("no-such-message-", await page.TextContentAsync("#entry-body"));
            Assert.Contains("Content-Type", await page.TextContentAsync("#entry-headers"));
            Assert.Equal(0, await page.Locator("#apply-entry").CountAsync());
            await page.AssertAccessibleAsync("/webhook-gateway/platform/events/{id}");

            // The filter: a refused callback is found by its verification.
            await page.GotoAsync("/webhook-gateway/platform?verification=invalid");
            Assert.Equal(0, await page.Locator(row).CountAsync());
        });

        // A tenant's owner: no link, and the page, an entry and the stream are refused.
        await fx.WithPageAsync(fx.Owner, async owner =>
        {
            await owner.GotoAsync("/webhook-gateway");
            Assert.Equal(0, await owner.Locator("a[href='/webhook-gateway/platform']").CountAsync());
            foreach (var url in new[] { "/webhook-gateway/platform", $"/webhook-gateway/platform/events/{Guid.NewGuid()}", "/webhook-gateway/platform/stream" })
            {
                var refused = await owner.APIRequest.GetAsync(url, new() { MaxRedirects = 0 });
                Assert.Equal(403, refused.Status);
            }
        });
    }

    /// <summary>A callback naming a message of no tenant, posted straight to Send Engine's webhook; returns its entry id.</summary>
    private async Task<string> PostPlatformCallbackAsync(string messageId)
    {
        using var http = new HttpClient { BaseAddress = new Uri(fx.SendEngineUrl + "/") };
        var body = JsonSerializer.Serialize(new
        {
            eventType = "delivered",
            messageId,
            email = "nobody@example.com",
            timestamp = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
        });
        using var response = await http.PostAsync("api/tencent/ses/webhook", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return response.Headers.GetValues("Webhook-Gateway-Entry").Single();
    }

    /// <summary>A callback for a gateway test message of the tenant, posted straight to Send Engine's webhook (the
    /// fixture's Send Engine accepts unauthenticated callbacks); returns its log entry id.</summary>
    private async Task<string> PostCallbackAsync(string tenantId)
    {
        using var http = new HttpClient { BaseAddress = new Uri(fx.SendEngineUrl + "/") };
        var body = JsonSerializer.Serialize(new
        {
            eventType = "open",
            messageId = $"gateway-test.{Guid.Parse(tenantId):N}.{Guid.NewGuid():N}"[..60],
            email = "gateway-test@example.com",
            timestamp = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
        });
        using var response = await http.PostAsync("api/tencent/ses/webhook", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return response.Headers.GetValues("Webhook-Gateway-Entry").Single();
    }
}
