using System.Net;
using System.Net.Http.Json;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class InternalApiTests(MemberCenterFixture mc)
{
    private async Task<HttpClient> SendEngineAsync() =>
        mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));

    private static async Task<List<string>> ConfirmedAsync(TestTenant tenant, int count)
    {
        var emails = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var email = $"r{i}-{Guid.NewGuid():N}@example.com";
            var sub = await tenant.SubscribeAsync(email, new { n = i });
            await tenant.ConfirmAsync(sub.ConfirmToken!);
            emails.Add(email);
        }
        return emails;
    }

    [Fact]
    public async Task Recipients_are_paged_by_keyset_without_urls_and_the_link_key_path_unsubscribes()
    {
        var tenant = await mc.CreateTenantAsync();
        var confirmed = await ConfirmedAsync(tenant, 5);
        await tenant.SubscribeAsync($"pending-{Guid.NewGuid():N}@example.com"); // never confirmed: not a recipient

        using var se = await SendEngineAsync();
        var seen = new List<Recipient>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}&limit=2" + (cursor is null ? "" : $"&after={cursor}"), MemberCenterFixture.Json);
            seen.AddRange(page!.Items);
            cursor = page.NextCursor;
            pages++;
        }
        while (cursor is not null && pages < 10);

        Assert.Equal(confirmed.Order(), seen.Select(r => r.Email).Order());
        // Send Engine mints its own links from the list's link key: the page carries no working URL.
        var raw = await se.GetStringAsync($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}");
        Assert.DoesNotContain("unsubscribe", raw, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(seen.Count, seen.Select(r => r.SubscriberId).Distinct().Count());
        Assert.All(seen, r => Assert.True(r.Preferences.ContainsKey("n")));

        var mint = await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId);
        using var http = mc.Http();
        using var unsubscribe = await http.PostAsync(mint(seen[0].SubscriberId), new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }));
        Assert.Equal(HttpStatusCode.OK, unsubscribe.StatusCode);
        var after = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json);
        Assert.DoesNotContain(seen[0].Email, after!.Items.Select(r => r.Email));

        var check = await MemberCenterFixture.ReadAsync<SubscriptionStatusResult>(await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/not-sendable",
            new { tenant_id = tenant.TenantId, emails = new[] { seen[0].Email, seen[1].Email } }, MemberCenterFixture.Json));
        Assert.Equal([seen[0].Email], check.NotSendable);
    }

    [Fact]
    public async Task Hard_bounce_marks_undeliverable_and_esp_unsubscribe_is_audited()
    {
        var tenant = await mc.CreateTenantAsync();
        var emails = await ConfirmedAsync(tenant, 2);
        using var se = await SendEngineAsync();

        var bounce = await MemberCenterFixture.ReadAsync<SuppressionReportResult>(await se.PostAsJsonAsync("internal/suppressions",
            new { tenant_id = tenant.TenantId, email = emails[0], reason = "hard_bounce", detail = "550 5.1.1 user unknown" }));
        Assert.Equal(1, bounce.SubscriptionsChanged);
        var unsub = await MemberCenterFixture.ReadAsync<SuppressionReportResult>(await se.PostAsJsonAsync("internal/suppressions",
            new { tenant_id = tenant.TenantId, email = emails[1], reason = "unsubscribe", list_id = tenant.ListId }));
        Assert.Equal(1, unsub.SubscriptionsChanged);

        var page = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json);
        Assert.Empty(page!.Items);
        Assert.Equal("unsubscribed", (await NewsletterApiTests.GetPreferencesAsync(tenant, emails[1])).Status);
        var trail = await mc.WithDbAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ToListAsync(
            db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId) && c.Source == "esp").OrderBy(c => c.Action).Select(c => new { c.Action, c.Details })));
        Assert.Equal(["marked_undeliverable", "unsubscribe"], trail.Select(c => c.Action));
        // The ESP's word is kept with the change it caused.
        Assert.Contains("550 5.1.1 user unknown", trail[0].Details);
        Assert.Null(trail[1].Details);

        await NewsletterApiTests.AssertValidationError(await se.PostAsJsonAsync("internal/suppressions", new { tenant_id = tenant.TenantId, email = emails[0], reason = "spam" }), "reason");
        await NewsletterApiTests.AssertValidationError(await se.PostAsJsonAsync("internal/suppressions",
            new { tenant_id = tenant.TenantId, email = emails[0], reason = "hard_bounce", detail = new string('x', 501) }), "detail");
    }

    [Fact]
    public async Task Internal_routes_refuse_tenant_tokens_and_other_tenants_lists()
    {
        var a = await mc.CreateTenantAsync();
        var b = await mc.CreateTenantAsync();
        using var tenantApi = a.Api();
        using var refused = await tenantApi.GetAsync($"internal/lists/{a.ListId}/recipients?tenant_id={a.TenantId}");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        using var se = await SendEngineAsync();
        using var mismatch = await se.GetAsync($"internal/lists/{a.ListId}/recipients?tenant_id={b.TenantId}");
        Assert.Equal(HttpStatusCode.NotFound, mismatch.StatusCode);
        await NewsletterApiTests.AssertValidationError(await se.GetAsync($"internal/lists/{a.ListId}/recipients"), "tenant_id");
    }

    [Fact]
    public async Task The_tenants_branded_footer_comes_with_the_list_check_the_link_key_and_the_mail_footer_route()
    {
        var tenant = await mc.CreateTenantAsync();
        using var se = await SendEngineAsync();
        var list = await se.GetFromJsonAsync<InternalListResponse>($"internal/lists/{tenant.ListId}?tenant_id={tenant.TenantId}", MemberCenterFixture.Json);
        Assert.Null(list!.PostalAddress);

        using (var site = tenant.Api())
        {
            await MemberCenterFixture.ReadAsync<BrandingResponse>(await site.PutAsJsonAsync("api/branding",
                new { postal_address = "1 Main St & Co", footer_text = "ACME news" }));
            await MemberCenterFixture.ReadAsync<PreferenceFieldsResponse>(await site.PutAsJsonAsync($"api/lists/{tenant.ListId}/preference-fields",
                new { default_language = "ko", fields = Array.Empty<object>() }));
        }
        list = await se.GetFromJsonAsync<InternalListResponse>($"internal/lists/{tenant.ListId}?tenant_id={tenant.TenantId}", MemberCenterFixture.Json);
        Assert.Equal("1 Main St & Co", list!.PostalAddress);
        var key = await MemberCenterFixture.ReadAsync<LinkKeyResponse>(await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key",
            new LinkKeyRequest(tenant.TenantId), MemberCenterFixture.Json));
        Assert.Equal("1 Main St & Co", key.PostalAddress);
        // The whole branded footer: the list's default language and the reader strings' unsubscribe wording per language.
        Assert.Equal(("ACME news", "1 Main St & Co", "ko"), (key.Footer!.FooterText, key.Footer.PostalAddress, key.Footer.DefaultLanguage));
        Assert.Equal(ReaderLanguages.All.Order(), key.Footer.Wording.Keys.Order());
        Assert.Equal(new MailFooterWording("Unsubscribe", "Unsubscribe: {link}"), key.Footer.Wording["en"]);
        Assert.Equal(new MailFooterWording("配信停止", "配信停止：{link}"), key.Footer.Wording["ja"]);
        Assert.Equal(new MailFooterWording("수신 거부", "수신 거부: {link}"), key.Footer.Wording["ko"]);
        Assert.Equal("取消訂閱", key.Footer.Wording["zh-TW"].Unsubscribe);
        Assert.Equal("退订", key.Footer.Wording["zh-CN"].Unsubscribe);
        var footer = await se.GetFromJsonAsync<InternalMailFooterResponse>($"internal/tenants/{tenant.TenantId}/mail-footer", MemberCenterFixture.Json);
        Assert.Equal((tenant.TenantId, "1 Main St & Co"), (footer!.TenantId, footer.PostalAddress));
        // Without a list: English by default, the same text, address and wording.
        Assert.Equal(("ACME news", "1 Main St & Co", "en"), (footer.Footer!.FooterText, footer.Footer.PostalAddress, footer.Footer.DefaultLanguage));
        Assert.Equal(key.Footer.Wording["ja"], footer.Footer.Wording["ja"]);

        Assert.Equal(HttpStatusCode.NotFound, (await se.GetAsync($"internal/tenants/{Guid.NewGuid()}/mail-footer")).StatusCode);
        // Tenant tokens never pass the internal routes.
        using var site2 = tenant.Api();
        Assert.Equal(HttpStatusCode.Forbidden, (await site2.GetAsync($"internal/tenants/{tenant.TenantId}/mail-footer")).StatusCode);
    }
}
