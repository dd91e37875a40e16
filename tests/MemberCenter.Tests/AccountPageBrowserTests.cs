using Deque.AxeCore.Playwright;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Playwright;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>The sign-in pages in Debian's chromium: the code flow as a person clicks it, CSP and accessibility (axe-core).</summary>
[Collection(MemberCenterBrowserCollection.Name)]
public sealed class AccountPageBrowserTests(MemberCenterFixture mc) : ChromiumTest
{
    [Fact]
    public async Task A_person_signs_in_on_a_phone_sized_page_and_the_console_gets_a_code()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Editor));
        await using var context = await Browser.NewContextAsync(new() { ViewportSize = new() { Width = 390, Height = 844 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(90_000);
        page.SetDefaultNavigationTimeout(90_000);
        // The console is not running: its redirect URI is answered here, and the URL (with the code) kept.
        string? callback = null;
        await page.RouteAsync(MemberCenterFixture.ConsoleUrl + "/**", async route =>
        {
            callback = route.Request.Url;
            await route.FulfillAsync(new() { Status = 200, ContentType = "text/html", Body = "<!doctype html><html lang=en><title>console</title><main>console</main></html>" });
        });
        var cspViolations = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Text.Contains("Content Security Policy", StringComparison.Ordinal))
            {
                cspViolations.Add(message.Text);
            }
        };

        var (_, challenge) = PersonClient.Pkce();
        await page.GotoAsync(new Uri(mc.BaseUri, PersonClient.AuthorizeUrl(challenge)).ToString());
        await page.WaitForURLAsync(url => url.Contains("/account/login", StringComparison.Ordinal));
        Assert.Equal("Sign in", await page.TextContentAsync("h1"));
        Assert.Equal("en", await page.GetAttributeAsync("html", "lang"));
        await AssertAccessibleAsync(page);

        // Keyboard only: labels lead to the fields, Enter submits.
        await page.GetByLabel("E-mail address").FillAsync(person.Email!);
        await page.GetByLabel("Password").FillAsync("wrong password!!");
        await page.GetByLabel("Password").PressAsync("Enter");
        await page.WaitForSelectorAsync("#login-error");
        Assert.Contains("wrong", await page.TextContentAsync("#login-error"));
        await AssertAccessibleAsync(page);

        await page.GetByLabel("E-mail address").FillAsync(person.Email!);
        await page.GetByLabel("Password").FillAsync(PersonClient.Password);
        await page.ClickAsync("#sign-in");
        await page.WaitForURLAsync(url => url.StartsWith(MemberCenterFixture.ConsoleUrl, StringComparison.Ordinal));
        Assert.NotNull(callback);
        Assert.False(string.IsNullOrEmpty(QueryHelpers.ParseQuery(new Uri(callback).Query)["code"].ToString()));
        Assert.Empty(cspViolations);

        // Still signed in at Member Center: the account pages pass the same checks.
        foreach (var path in new[] { "/account", "/account/two-factor", "/account/passkeys", "/account/forgot-password" })
        {
            var response = await page.GotoAsync(new Uri(mc.BaseUri, path).ToString());
            Assert.Equal(200, response!.Status);
            Assert.Contains("default-src 'none'", response.Headers["content-security-policy"]);
            await AssertAccessibleAsync(page);
        }
    }

    private static async Task AssertAccessibleAsync(IPage page)
    {
        var result = await page.RunAxe();
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").Select(v => $"{v.Id}: {v.Help}").ToList();
        Assert.True(serious.Count == 0, $"{page.Url}: " + string.Join("; ", serious));
    }
}
