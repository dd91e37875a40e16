using System.Net.Http.Json;
using Deque.AxeCore.Playwright;
using MemberCenter.Features.Reader;
using Microsoft.Playwright;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>
/// A reader in each of the five languages, in Debian's chromium: confirm from the mail, the preference centre
/// (labels and choices in their language, saving), unsubscribe; axe-core finds nothing serious on any page.
/// </summary>
[Collection(MemberCenterBrowserCollection.Name)]
public sealed class ReaderPageBrowserTests(MemberCenterFixture mc) : ChromiumTest
{
    private static readonly ReaderText Strings = new();
    private static async Task AssertAccessibleAsync(IPage page, string what)
    {
        var result = await page.RunAxe();
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(serious.Count == 0, $"{what}: " + string.Join("; ", serious.Select(v =>
            $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Html))}")));
    }

    [Theory]
    [InlineData("en", "How often", "Weekly", "Art")]
    [InlineData("zh-TW", "頻率", "每週", "藝術")]
    [InlineData("zh-CN", "频率", "每周", "艺术")]
    [InlineData("ja", "頻度", "毎週", "アート")]
    [InlineData("ko", "빈도", "매주", "예술")]
    public async Task A_reader_confirms_edits_preferences_and_unsubscribes_in_their_language(string language, string frequencyLabel, string weekly, string art)
    {
        var t = Strings.For(language);
        var tenant = await mc.CreateTenantAsync();
        await ReaderSettingsTests.PutFieldsAsync(tenant, ReaderSettingsTests.Fields());
        using (var api = tenant.Api())
        {
            await MemberCenterFixture.ReadAsync<BrandingResponse>(await api.PutAsJsonAsync("api/branding", new
            {
                display_name = "Acme 新聞",
                primary_color = "#7c2d12",
                footer_text = "Acme Newsletters",
                postal_address = "1 Main St, Springfield, USA",
            }));
        }
        var email = $"browser-{language}-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email, new { lang = language, frequency = "daily" });
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        Assert.Equal(Texts.Fill(t["mail.subject"], new Dictionary<string, string> { ["list"] = "Weekly" }), mail.Subject);

        var page = await Browser.NewPageAsync();
        page.SetDefaultTimeout(90_000);
        page.SetDefaultNavigationTimeout(90_000);

        // Confirm from the mail's button.
        await FollowMailLinkAsync(page, mail.Html!, "#confirm-link", "/newsletter/confirm");
        Assert.Equal(language, await page.GetAttributeAsync("html", "lang"));
        Assert.Equal(t["confirm.done.title"], await page.TextContentAsync("h1"));
        Assert.Contains("Acme 新聞", await page.TextContentAsync("header"));
        Assert.Contains("1 Main St, Springfield, USA", await page.TextContentAsync("#postal-address"));
        await AssertAccessibleAsync(page, $"confirm ({language})");

        // The preference centre: labels and choices in the reader's language, no raw keys.
        var token = await tenant.UnsubscribeTokenAsync(email);
        await page.GotoAsync(new Uri(mc.BaseUri, $"newsletter/manage?token={token}").ToString());
        Assert.Equal(t["manage.title"], await page.TextContentAsync("h1"));
        var form = await page.TextContentAsync("form[action='/newsletter/manage']");
        Assert.Contains(frequencyLabel, form);
        Assert.Contains(art, form);
        Assert.DoesNotContain("frequency", form);
        Assert.DoesNotContain("topics", form);
        await AssertAccessibleAsync(page, $"preference centre ({language})");
        await page.SelectOptionAsync("select[name='pref:frequency']", new SelectOptionValue { Label = weekly });
        await page.GetByLabel(art, new() { Exact = true }).CheckAsync();
        await page.ClickAsync("#save");
        await page.WaitForSelectorAsync("#saved");
        Assert.Equal(t["manage.saved"], await page.TextContentAsync("#saved"));
        await AssertAccessibleAsync(page, $"preference centre saved ({language})");
        var prefs = (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Preferences!;
        Assert.Equal("weekly", prefs["frequency"].GetString());
        Assert.Equal(["art"], prefs["topics"].EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(language, prefs["lang"].GetString());

        // Unsubscribe: asked first, then done.
        await page.GotoAsync(new Uri(mc.BaseUri, $"newsletter/unsubscribe?token={token}").ToString());
        Assert.Equal(t["unsubscribe.title"], await page.TextContentAsync("h1"));
        await AssertAccessibleAsync(page, $"unsubscribe ({language})");
        await page.ClickAsync("#unsubscribe");
        await page.WaitForSelectorAsync($"h1:text-is('{t["unsubscribed.title"]}')");
        Assert.Equal(language, await page.GetAttributeAsync("html", "lang"));
        await AssertAccessibleAsync(page, $"unsubscribed ({language})");
        Assert.Equal("unsubscribed", (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Status);
    }
}
