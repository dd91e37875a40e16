using System.Net;
using Microsoft.Playwright;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;

namespace Console.Tests;

/// <summary>
/// Passkeys in the real browser (chromium's virtual WebAuthn authenticator over CDP), and console sessions that live in
/// the console's database: they survive a restart, work on a second instance, and sign-out deletes them.
/// </summary>
public sealed class PasskeyAndSessionTests(SessionStackFixture stack) : IClassFixture<SessionStackFixture>
{
    [Fact]
    public async Task A_person_registers_a_passkey_then_signs_in_with_it_to_the_console_and_a_removed_one_no_longer_works()
    {
        var person = await stack.CreatePersonAsync("passkey@console.example", Roles.Editor);
        await using var console = stack.StartConsole(stack.ConsolePort);
        await using var context = await stack.Browser.NewContextAsync();
        context.SetDefaultTimeout(90_000);
        context.SetDefaultNavigationTimeout(90_000);
        var page = await context.NewPageAsync();
        var cspViolations = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Text.Contains("Content Security Policy", StringComparison.Ordinal))
            {
                cspViolations.Add(message.Text);
            }
        };
        // A platform authenticator that keeps discoverable credentials and verifies the user (as a phone or laptop would).
        var cdp = await context.NewCDPSessionAsync(page);
        await cdp.SendAsync("WebAuthn.enable");
        var added = await cdp.SendAsync("WebAuthn.addVirtualAuthenticator", new Dictionary<string, object>
        {
            ["options"] = new Dictionary<string, object>
            {
                ["protocol"] = "ctap2",
                ["transport"] = "internal",
                ["hasResidentKey"] = true,
                ["hasUserVerification"] = true,
                ["isUserVerified"] = true,
                ["automaticPresenceSimulation"] = true,
            },
        });
        var authenticatorId = added!.Value.GetProperty("authenticatorId").GetString()!;

        await stack.SignInAsync(page, person, stack.ConsoleUrl);

        // Register on Member Center's account page.
        await page.GotoAsync(stack.MemberCenterUrl + "/account/passkeys");
        await page.WaitForSelectorAsync("#no-passkeys");
        await page.AssertAccessibleAsync();
        await page.FillAsync("#passkey-name", "Test laptop");
        await page.ClickAsync("#add-passkey");
        await page.WaitForSelectorAsync("#status, #error, #passkey-problem:not([hidden])");
        Assert.True(await page.Locator("#status").CountAsync() == 1,
            $"no passkey added at {page.Url}: {await page.TextContentAsync("main")}");
        Assert.Contains("Test laptop", await page.TextContentAsync("#passkeys"));
        await page.AssertAccessibleAsync();
        var credentials = await cdp.SendAsync("WebAuthn.getCredentials", new Dictionary<string, object> { ["authenticatorId"] = authenticatorId });
        var credential = Assert.Single(credentials!.Value.GetProperty("credentials").EnumerateArray());
        Assert.True(credential.GetProperty("isResidentCredential").GetBoolean());

        // Signed out of the console and of Member Center: the console sends the browser to the login page again.
        await SignOutAsync(page);
        await page.GotoAsync(stack.ConsoleUrl + "/");
        await page.WaitForAddressAsync(url => url.StartsWith(stack.MemberCenterUrl + "/account/login", StringComparison.Ordinal));
        await page.AssertAccessibleAsync();

        // The passkey alone (no address, no password, no TOTP) signs in, and the code flow ends in the console.
        await page.ClickAsync("#passkey-sign-in");
        await page.WaitForAddressAsync(url => !url.Contains("/account/login", StringComparison.Ordinal), 20_000)
            .ContinueWith(_ => Task.CompletedTask, TaskScheduler.Default);
        Assert.False(page.Url.Contains("/account/login", StringComparison.Ordinal), $"passkey sign-in stayed on the login page: {await page.TextContentAsync("main")}");
        await SessionStackFixture.WaitForConsoleAsync(page, stack.ConsoleUrl);
        Assert.Contains("Session tenant", await page.TextContentAsync("#current-tenant"));

        // Removed at Member Center, the same credential no longer signs in.
        await page.GotoAsync(stack.MemberCenterUrl + "/account/passkeys");
        await page.GetByRole(AriaRole.Button, new() { Name = "Remove passkey Test laptop" }).ClickAsync();
        await page.WaitForSelectorAsync("#no-passkeys");
        await SignOutAsync(page);
        await page.GotoAsync(stack.ConsoleUrl + "/");
        await page.WaitForAddressAsync(url => url.StartsWith(stack.MemberCenterUrl + "/account/login", StringComparison.Ordinal));
        await page.ClickAsync("#passkey-sign-in");
        await page.WaitForSelectorAsync("#login-error");
        Assert.Contains("not registered", await page.TextContentAsync("#login-error"));
        Assert.StartsWith(stack.MemberCenterUrl + "/account/login", page.Url, StringComparison.Ordinal);
        Assert.Empty(cspViolations);
    }

    [Fact]
    public async Task A_console_session_survives_a_restart_works_on_a_second_instance_and_sign_out_deletes_it()
    {
        var person = await stack.CreatePersonAsync("session@console.example", Roles.Viewer);
        await using var context = await stack.Browser.NewContextAsync();
        context.SetDefaultTimeout(90_000);
        context.SetDefaultNavigationTimeout(90_000);
        var page = await context.NewPageAsync();
        string cookie;
        var first = stack.StartConsole(stack.ConsolePort);
        try
        {
            await stack.SignInAsync(page, person, stack.ConsoleUrl);
            cookie = (await context.CookiesAsync([stack.ConsoleUrl])).Single(c => c.Name == "newsletter_console").Value;
            Assert.Equal(1, await CountSessionsAsync());
            // The row holds neither the cookie's key nor the tokens in clear.
            var ticket = await TicketBytesAsync();
            Assert.DoesNotContain("eyJ", System.Text.Encoding.Latin1.GetString(ticket), StringComparison.Ordinal);

            // A second instance on the same database reads the same session (the cookie is decrypted with the shared key ring).
            var secondPort = FreePort.Get();
            await using var second = stack.StartConsole(secondPort);
            using var home = await GetHomeAsync($"http://localhost:{secondPort}/", cookie);
            Assert.Equal(HttpStatusCode.OK, home.StatusCode);
        }
        finally
        {
            await first.DisposeAsync();
        }

        // Every instance stopped; a new one (a restart) still knows the session.
        await using var restarted = stack.StartConsole(stack.ConsolePort);
        using (var home = await GetHomeAsync(stack.ConsoleUrl + "/", cookie))
        {
            Assert.Equal(HttpStatusCode.OK, home.StatusCode);
            Assert.Contains("Session tenant", await home.Content.ReadAsStringAsync());
        }

        // Signing out removes the ticket: the same cookie then starts a new sign-in.
        await page.GotoAsync(stack.ConsoleUrl + "/");
        await page.WaitForSelectorAsync("#current-tenant");
        await SignOutAsync(page);
        Assert.Equal(0, await CountSessionsAsync());
        using (var after = await GetHomeAsync(stack.ConsoleUrl + "/", cookie))
        {
            Assert.Equal(HttpStatusCode.Found, after.StatusCode);
            Assert.StartsWith(stack.MemberCenterUrl + "/connect/authorize", after.Headers.Location!.ToString(), StringComparison.Ordinal);
        }
    }

    private async Task SignOutAsync(IPage page)
    {
        await page.GotoAsync(stack.ConsoleUrl + "/");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await page.WaitForAddressAsync(url => url.Contains("/SignedOut", StringComparison.Ordinal));
    }

    private static async Task<HttpResponseMessage> GetHomeAsync(string baseUrl, string cookie)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(baseUrl), "/"));
        request.Headers.Add("Cookie", "newsletter_console=" + cookie);
        return await http.SendAsync(request);
    }

    private async Task<long> CountSessionsAsync()
    {
        await using var conn = new NpgsqlConnection(stack.ConsoleDatabase);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM session_tickets", conn);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private async Task<byte[]> TicketBytesAsync()
    {
        await using var conn = new NpgsqlConnection(stack.ConsoleDatabase);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT ticket FROM session_tickets LIMIT 1", conn);
        return (byte[])(await cmd.ExecuteScalarAsync())!;
    }
}
