using System.Net.Http.Headers;
using System.Net.Http.Json;
using Newsletter.Contracts;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.Contracts.ProviderCredentials;

namespace Console.Tests;

/// <summary>
/// The Providers page's bounce mailboxes for a viewer (newsletter:send.read): listed read-only, with no form and no
/// password; a post to check one is refused (403 with the page's antiforgery token, 400 without one).
/// </summary>
public sealed class BounceMailboxConsoleTests(ConsoleFixture fx)
{
    [Fact]
    public async Task A_viewer_sees_the_tenants_bounce_mailboxes_read_only_and_a_post_to_change_one_is_refused()
    {
        // Registered through Send Engine's API by the tenant's integration (webhooks scope), disabled: never read.
        const string password = "mailbox-secret-Pw-93";
        var username = $"bounces-{Guid.NewGuid():N}"[..16];
        using var se = new HttpClient { BaseAddress = new Uri(fx.SendEngineUrl + "/") };
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            await fx.TokenAsync(fx.TenantA.SendClientId, fx.TenantA.SendClientSecret, Scopes.Webhooks + " " + Scopes.SendRead));
        var mailbox = await ConsoleFixture.PostAsync<BounceMailboxResponse>(se, "api/bounce-mailboxes",
            new CreateBounceMailboxRequest("127.0.0.1", 1143, BounceMailboxTls.None, username, password, "Bounces", null, null, null, Enabled: false));

        await fx.WithPageAsync(fx.Viewer, async page =>
        {
            Assert.Equal(200, (await page.GotoAsync("/providers"))!.Status);
            var row = page.Locator($"#mailboxes tr[data-mailbox='{mailbox.MailboxId}']");
            Assert.Equal(1, await row.CountAsync());
            Assert.Contains($"{username} at 127.0.0.1:1143", await row.Locator("td").First.TextContentAsync());
            Assert.Equal("Bounces", await row.Locator("td").Nth(1).TextContentAsync());
            // Read-only: no form, button or field in the mailbox table, no add forms, and the password nowhere.
            Assert.Equal(0, await page.Locator("#mailboxes form, #mailboxes button, #mailboxes input").CountAsync());
            Assert.Equal(0, await page.Locator("input[type=password]").CountAsync());
            Assert.Equal(0, await page.Locator("form[action*='handler=']").CountAsync());
            Assert.DoesNotContain(password, await page.ContentAsync());
            await page.AssertAccessibleAsync("/providers (viewer, bounce mailboxes)");

            // The check posted anyway, with the session and the page's own antiforgery token: the page refuses the role.
            var token = await page.Locator("input[name=__RequestVerificationToken]").First.GetAttributeAsync("value");
            var form = page.Context.APIRequest.CreateFormData();
            form.Set("mailboxId", mailbox.MailboxId);
            form.Set("__RequestVerificationToken", token!);
            Assert.Equal(403, (await page.APIRequest.PostAsync("/providers?handler=VerifyMailbox", new() { Form = form, MaxRedirects = 0 })).Status);
        });

        // CSRF: an admin's session without the token is refused before the role is looked at.
        var admin = await fx.SignedInAsync(fx.Admin);
        var forged = admin.APIRequest.CreateFormData();
        forged.Set("mailboxId", mailbox.MailboxId);
        Assert.Equal(400, (await admin.APIRequest.PostAsync("/providers?handler=VerifyMailbox", new() { Form = forged, MaxRedirects = 0 })).Status);

        // Neither post checked the mailbox: it is still unverified, and Send Engine answers no password either.
        var after = (await se.GetFromJsonAsync<BounceMailboxResponse>($"api/bounce-mailboxes/{mailbox.MailboxId}", ConsoleFixture.Json))!;
        Assert.Equal(VerificationStatuses.Unverified, after.Verification!.Status);
        Assert.DoesNotContain(password, await se.GetStringAsync($"api/bounce-mailboxes/{mailbox.MailboxId}"));
        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await se.DeleteAsync($"api/bounce-mailboxes/{mailbox.MailboxId}")).StatusCode);
    }
}
