using System.Text.Json;
using Deque.AxeCore.Playwright;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Newsletter.TestSupport;
using Newsletter.Contracts;

namespace Console.Tests;

/// <summary>
/// What <see cref="ConsoleFixture"/> and <see cref="SessionStackFixture"/> (and the tests on them) do alike: launch
/// chromium, get a client-credentials token, make a confirmed person, sign in through Member Center's login page, and
/// check a page with axe-core.
/// </summary>
public static class ConsoleTesting
{
    /// <summary>Debian's chromium-headless-shell (<see cref="ChromiumBinary"/>), without sandbox and background traffic.</summary>
    public static Task<IBrowser> LaunchChromiumAsync(IPlaywright playwright) =>
        playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = ChromiumBinary.HeadlessShellPath,
            Args = ChromiumBinary.Args,
        });

    /// <summary>A client-credentials access token from Member Center at <paramref name="memberCenterUrl"/>.</summary>
    public static async Task<string> TokenAsync(string memberCenterUrl, string clientId, string secret, string? scope = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(memberCenterUrl + "/") };
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }
        using var response = await http.PostAsync("oauth/token", new FormUrlEncodedContent(form));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"token for {clientId}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    /// <summary>
    /// A person through the admin API, their address then confirmed through Identity (as the link in their confirmation
    /// mail would): an unconfirmed account cannot sign in. Returns the user id.
    /// </summary>
    public static async Task<string> CreateConfirmedPersonAsync(HttpClient admin, IServiceProvider memberCenterServices, Person person, string name)
    {
        var created = await ConsoleFixture.PostAsync<PersonResponse>(admin, "admin/people", new CreatePersonRequest(person.Email, name, person.Password));
        using var scope = memberCenterServices.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<MemberCenter.Features.People.Person>>();
        var user = await users.FindByIdAsync(created.UserId) ?? throw new InvalidOperationException($"{person.Email} was not created");
        var confirmed = await users.ConfirmEmailAsync(user, await users.GenerateEmailConfirmationTokenAsync(user));
        Assert.True(confirmed.Succeeded, string.Join("; ", confirmed.Errors.Select(e => e.Description)));
        return created.UserId;
    }

    /// <summary>Opens the console at <paramref name="consoleUrl"/>, signs in on Member Center's login page and waits for the console.</summary>
    public static async Task SignInAsync(IPage page, Person person, string memberCenterUrl, string consoleUrl)
    {
        await page.GotoAsync(consoleUrl + "/");
        await page.WaitForAddressAsync(url => url.StartsWith(memberCenterUrl + "/account/login", StringComparison.Ordinal));
        await page.FillAsync("#email", person.Email);
        await page.FillAsync("#password", person.Password);
        await page.ClickAsync("#sign-in");
        await WaitForConsoleAsync(page, consoleUrl);
    }

    /// <summary>Waits until the sign-in has come back to the console and its page shows the tenant switch.</summary>
    public static async Task WaitForConsoleAsync(IPage page, string consoleUrl)
    {
        try
        {
            await page.WaitForAddressAsync(url => url.StartsWith(consoleUrl + "/", StringComparison.Ordinal) && !url.Contains("signin-oidc", StringComparison.Ordinal));
            await page.WaitForSelectorAsync("#current-tenant", new() { Timeout = 45_000 });
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"Sign-in stopped at {page.Url}: {await page.TextContentAsync("body")}", e);
        }
    }

    /// <summary>
    /// Waits until the page's address satisfies <paramref name="matches"/>, then until its document is parsed. Not
    /// Playwright's WaitForURL, which also waits for a load state: chromium's load event went unreported on a loaded CI
    /// machine, and with WaitUntil Commit Playwright still waited for a load state when the address already matched (a
    /// sign-in whose console page was shown failed after 45 s). The address is updated at each commit.
    /// </summary>
    public static async Task WaitForAddressAsync(this IPage page, Func<string, bool> matches, float timeoutMs = 45_000)
    {
        var limit = TimeSpan.FromMilliseconds(timeoutMs);
        await Poll.UntilAsync(() => matches(page.Url), limit, () => $"the page's address did not become the awaited one within {limit.TotalSeconds:0} s (at {page.Url})");
        await page.WaitForFunctionAsync("document.readyState !== 'loading'", null, new() { Timeout = timeoutMs });
    }

    /// <summary>Runs <paramref name="body"/> on a new page of <paramref name="context"/> and closes the page whatever happens.</summary>
    public static async Task WithPageAsync(this IBrowserContext context, Func<IPage, Task> body)
    {
        var page = await context.NewPageAsync();
        try
        {
            await body(page);
        }
        finally
        {
            await page.CloseAsync();
        }
    }

    /// <summary>Fails on any serious or critical axe-core violation of the page as it is now; <paramref name="what"/> names it (default: its URL).</summary>
    public static async Task AssertAccessibleAsync(this IPage page, string? what = null)
    {
        var result = await page.RunAxe();
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(serious.Count == 0, $"{what ?? page.Url}: " + string.Join("; ", serious.Select(v =>
            $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Html))}")));
    }
}
