using Microsoft.Playwright;

namespace MemberCenter.Tests;

/// <summary>Debian's chromium, driven by Playwright, clicking what a reader clicks in their mail.</summary>
[Collection(MemberCenterBrowserCollection.Name)]
public sealed class EndUserPageBrowserTests(MemberCenterFixture mc) : ChromiumTest
{
    private async Task<IPage> NewPageAsync()
    {
        var page = await Browser.NewPageAsync();
        // CI runs the test projects side by side on two cores; Playwright's 30 s default is tight there.
        page.SetDefaultTimeout(90_000);
        page.SetDefaultNavigationTimeout(90_000);
        return page;
    }

    [Fact]
    public async Task Reader_confirms_from_the_mail_link()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = $"browser-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email);
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));

        var page = await NewPageAsync();
        await FollowMailLinkAsync(page, mail.Html!, "#confirm-link", "/newsletter/confirm");
        Assert.Equal("Subscription confirmed", await page.TextContentAsync("h1"));
        Assert.Contains(email, await page.TextContentAsync("main"));
        Assert.Equal("confirmed", (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Status);

        await page.ReloadAsync();
        Assert.Equal("Already confirmed", await page.TextContentAsync("h1"));
    }

    [Fact]
    public async Task Reader_unsubscribes_with_the_button()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = $"leaver-{Guid.NewGuid():N}@example.com";
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
        var token = await tenant.UnsubscribeTokenAsync(email);

        var page = await NewPageAsync();
        await page.GotoAsync(new Uri(mc.BaseUri, $"newsletter/unsubscribe?token={token}").ToString());
        Assert.Equal("Unsubscribe", await page.TextContentAsync("h1"));
        Assert.DoesNotContain(email, await page.ContentAsync()); // masked
        await page.ClickAsync("#unsubscribe");
        await page.WaitForSelectorAsync("text=You are unsubscribed");
        Assert.Equal("unsubscribed", (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Status);
    }

    [Fact]
    public async Task Reader_edits_preferences_in_the_preference_centre()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = $"prefs-{Guid.NewGuid():N}@example.com";
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email, new { lang = "zh-TW" })).ConfirmToken!);
        var token = await tenant.UnsubscribeTokenAsync(email);

        var page = await NewPageAsync();
        await page.GotoAsync(new Uri(mc.BaseUri, $"newsletter/manage?token={token}").ToString());
        Assert.Equal("zh-TW", await page.InputValueAsync("input[name='pref:lang']"));
        await page.FillAsync("input[name='pref:lang']", "en");
        await page.ClickAsync("#save");
        await page.WaitForSelectorAsync("#saved");
        Assert.Equal("en", (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Preferences!["lang"].GetString());
    }
}
