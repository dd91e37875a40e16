using Microsoft.Playwright;

namespace Console.Tests;

/// <summary>
/// The console in Debian's chromium: people sign in through Member Center's login page and use the pages; what their
/// role does not allow is hidden and refused; another tenant's objects are 404; every page passes axe-core.
/// </summary>
public sealed class ConsoleBrowserTests(ConsoleFixture fx)
{
    [Fact]
    public async Task Every_page_renders_for_an_owner_and_has_no_serious_accessibility_violation()
    {
        var a = fx.TenantA;
        var paths = new[]
        {
            "/", "/lists", $"/lists/{a.ListId}", "/send-jobs", "/send-jobs/new", $"/send-jobs/{a.JobId}",
            $"/send-jobs/{a.JobId}/message", "/subscribers", "/transactional", "/suppressions", "/credentials", "/providers", "/people", "/operation-log", "/status",
        };
        // Pages (tabs) of the owner's one signed-in context, three at a time: each page is a load and an axe-core run
        // that mostly waits on the servers and the renderer, one after another they took minutes.
        var context = await fx.SignedInAsync(fx.Owner);
        await Parallel.ForEachAsync(paths, new ParallelOptions { MaxDegreeOfParallelism = 3 }, async (path, _) =>
            await context.WithPageAsync(async page =>
            {
                var response = await page.GotoAsync(path);
                Assert.True(response!.Status == 200, $"{path} answered {response.Status}");
                Assert.False(string.IsNullOrWhiteSpace(await page.TextContentAsync("h1")), $"{path} has no heading");
                await page.AssertAccessibleAsync(path);
            }));
        await context.WithPageAsync(async page =>
        {
            // The owner's pages show what their role allows: the message body and the Credentials actions.
            await page.GotoAsync($"/send-jobs/{a.JobId}/message");
            Assert.Contains(ConsoleFixture.SecretBody, await page.TextContentAsync("#body-text"));
            await page.GotoAsync("/credentials");
            Assert.Equal(1, await page.Locator("button", new() { HasTextString = "Create application" }).CountAsync());
        });
    }

    [Fact]
    public async Task A_viewer_sees_no_message_body_even_by_url_and_no_write_controls()
    {
        await fx.WithPageAsync(fx.Viewer, async page =>
        {
            var job = fx.TenantA.JobId;
            var detail = await page.GotoAsync($"/send-jobs/{job}");
            Assert.Equal(200, detail!.Status);
            Assert.DoesNotContain(ConsoleFixture.SecretBody, await page.ContentAsync());
            Assert.Equal("Message content is not shown to your role.", await page.TextContentAsync("#content-hidden"));
            Assert.Equal(0, await page.Locator("form button", new() { HasTextString = "Cancel job" }).CountAsync());

            var message = await page.GotoAsync($"/send-jobs/{job}/message");
            Assert.Equal(403, message!.Status);
            Assert.DoesNotContain(ConsoleFixture.SecretBody, await page.ContentAsync());

            await page.GotoAsync("/send-jobs");
            Assert.Equal(0, await page.Locator("a", new() { HasTextString = "New send job" }).CountAsync());
            Assert.Equal(403, (await page.GotoAsync("/send-jobs/new"))!.Status);
            await page.GotoAsync("/lists");
            Assert.Equal(0, await page.Locator("#name").CountAsync()); // no create form
            Assert.Equal(0, await page.Locator("nav a[href='/credentials']").CountAsync());
            await page.AssertAccessibleAsync("/lists (viewer)");
        });
    }

    [Fact]
    public async Task An_editor_sees_no_credentials_and_gets_403_for_them_by_url()
    {
        await fx.WithPageAsync(fx.Editor, async page =>
        {
            await page.GotoAsync("/");
            Assert.Equal("editor", await page.TextContentAsync("#role"));
            Assert.Equal(0, await page.Locator("nav a[href='/credentials']").CountAsync());
            Assert.Equal(1, await page.Locator("nav a[href='/send-jobs']").CountAsync());
            var credentials = await page.GotoAsync("/credentials");
            Assert.Equal(403, credentials!.Status);
            Assert.Equal(0, await page.Locator("nav a[href='/people']").CountAsync());
            Assert.Equal(403, (await page.GotoAsync("/people"))!.Status);
            Assert.Equal(0, await page.Locator("form button", new() { HasTextString = "Create key" }).CountAsync());
            Assert.Equal(0, await page.Locator("form button", new() { HasTextString = "Create endpoint" }).CountAsync());

            // What an editor may do works: the message body is theirs to read.
            await page.GotoAsync($"/send-jobs/{fx.TenantA.JobId}/message");
            Assert.Contains(ConsoleFixture.SecretBody, await page.TextContentAsync("#body-text"));
        });
    }

    [Fact]
    public async Task A_person_of_tenant_B_gets_404_for_tenant_A_objects_by_url()
    {
        await fx.WithPageAsync(fx.OwnerOfB, async page =>
        {
            var a = fx.TenantA;
            foreach (var path in new[] { $"/send-jobs/{a.JobId}", $"/send-jobs/{a.JobId}/message", $"/lists/{a.ListId}" })
            {
                var response = await page.GotoAsync(path);
                Assert.True(response!.Status == 404, $"{path} answered {response.Status}");
                Assert.Equal("Not found", await page.TextContentAsync("h1"));
                Assert.DoesNotContain(ConsoleFixture.SecretBody, await page.ContentAsync());
                Assert.DoesNotContain("Tenant A launch", await page.ContentAsync());
            }
            // Their own tenant's job is there.
            Assert.Equal(200, (await page.GotoAsync($"/send-jobs/{fx.TenantB.JobId}"))!.Status);
            Assert.Equal("Tenant B launch", await page.TextContentAsync("h1"));
        });
    }

    [Fact]
    public async Task A_relay_is_added_and_verified_with_the_servers_answer_shown_a_viewer_only_reads_and_forged_or_unauthorised_posts_change_nothing()
    {
        var name = $"relay-{Guid.NewGuid():N}"[..14];
        var closedName = name + "-closed";
        var context = await fx.SignedInAsync(fx.Admin);
        await context.WithPageAsync(async page =>
        {
            await page.GotoAsync("/providers");
            // The test relay (loopback, no TLS: allowed by ProviderCredentials:AllowPrivateNetworks), created unverified.
            await page.FillAsync("#smtp-name", name);
            await page.FillAsync("#smtp-host", fx.Relay.Host);
            await page.FillAsync("#smtp-port", fx.Relay.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await page.SelectOptionAsync("#smtp-tls", "none");
            await page.ClickAsync("button:has-text('Add relay')");
            await page.WaitForSelectorAsync($"#notice:has-text('SMTP relay {name} added')");
            var row = page.Locator("#credentials tr", new() { Has = page.Locator($"td:text-is('{name}')") });
            Assert.Equal("unverified", await row.Locator("td.status").TextContentAsync());

            // Verified live: the status and the server's own answer (its greeting and EHLO reply) are shown.
            await row.Locator("button:has-text('Verify')").ClickAsync();
            await page.WaitForSelectorAsync($"#notice:has-text('{name}: verified')");
            Assert.Equal("verified", await row.Locator("td.status").TextContentAsync());
            var answer = await row.Locator("pre.answer").TextContentAsync();
            Assert.Contains($"connected to {fx.Relay.Host}:{fx.Relay.Port} without TLS", answer);
            Assert.Contains("250", answer);
            await page.AssertAccessibleAsync("/providers (after a check)");

            // A closed port fails with a clear message, at once.
            await page.FillAsync("#smtp-name", closedName);
            await page.FillAsync("#smtp-host", "127.0.0.1");
            await page.FillAsync("#smtp-port", Newsletter.TestSupport.FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture));
            await page.SelectOptionAsync("#smtp-tls", "none");
            await page.ClickAsync("button:has-text('Add relay')");
            var closed = page.Locator("#credentials tr", new() { Has = page.Locator($"td:text-is('{closedName}')") });
            await closed.Locator("button:has-text('Verify')").ClickAsync();
            await page.WaitForSelectorAsync($"#notice:has-text('{closedName}: failed')");
            Assert.StartsWith("connection refused", await closed.Locator("pre.answer").TextContentAsync());

            // A viewer sees the relays and their checks, with no controls; a post with a valid antiforgery token is still refused (403).
            var viewer = await fx.SignedInAsync(fx.Viewer);
            var viewerPage = await viewer.NewPageAsync();
            Assert.Equal(200, (await viewerPage.GotoAsync("/providers"))!.Status);
            Assert.Equal(1, await viewerPage.Locator("nav a[href='/providers']").CountAsync());
            Assert.Equal("verified", await viewerPage.Locator("#credentials tr", new() { Has = viewerPage.Locator($"td:text-is('{name}')") }).Locator("td.status").TextContentAsync());
            Assert.Equal(0, await viewerPage.Locator("#smtp-name").CountAsync());
            Assert.Equal(0, await viewerPage.Locator("#credentials button").CountAsync());
            await viewerPage.AssertAccessibleAsync("/providers (viewer)");
            var credentialId = await row.GetAttributeAsync("data-credential");
            var token = await viewerPage.Locator("input[name=__RequestVerificationToken]").First.GetAttributeAsync("value");
            var viewerForm = viewer.APIRequest.CreateFormData();
            viewerForm.Set("credentialId", credentialId!);
            viewerForm.Set("__RequestVerificationToken", token!);
            Assert.Equal(403, (await viewer.APIRequest.PostAsync("/providers?handler=Delete", new() { Form = viewerForm, MaxRedirects = 0 })).Status);

            // CSRF: the admin's cookie without the token is refused, and the relay is still there.
            var forged = context.APIRequest.CreateFormData();
            forged.Set("credentialId", credentialId!);
            Assert.Equal(400, (await context.APIRequest.PostAsync("/providers?handler=Delete", new() { Form = forged, MaxRedirects = 0 })).Status);
            await page.GotoAsync("/providers");
            Assert.Equal(1, await row.CountAsync());

            // Deleted through the page.
            await closed.Locator("button:has-text('Delete')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('The credential is deleted')");
            Assert.Equal(0, await closed.CountAsync());
            await row.Locator("button:has-text('Delete')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('The credential is deleted')");
            Assert.Equal(0, await row.CountAsync());
            await viewerPage.CloseAsync();
        });
    }

    [Fact]
    public async Task A_post_without_the_antiforgery_token_is_refused()
    {
        var context = await fx.SignedInAsync(fx.Owner);
        // The session cookie goes along (as from a forged page), the antiforgery token does not.
        var form = context.APIRequest.CreateFormData();
        form.Set("name", "Forged list");
        var response = await context.APIRequest.PostAsync("/lists?handler=Create", new() { Form = form, MaxRedirects = 0 });
        Assert.Equal(400, response.Status);

        await context.WithPageAsync(async page =>
        {
            await page.GotoAsync("/lists");
            Assert.Equal(0, await page.Locator("a", new() { HasTextString = "Forged list" }).CountAsync());
            // The same form through the page (with its token) works.
            var name = $"Console list {Guid.NewGuid():N}"[..24];
            await page.FillAsync("#name", name);
            await page.ClickAsync("button:has-text('Create list')");
            await page.WaitForAddressAsync(url => url.Contains("/lists/", StringComparison.Ordinal));
            Assert.Equal(name, await page.TextContentAsync("h1"));
        });
    }

    [Fact]
    public async Task The_tenant_switch_is_one_click_without_a_password()
    {
        // A context of its own: the switch changes the session's tenant.
        var context = await fx.Browser.NewContextAsync(new() { BaseURL = fx.ConsoleUrl + "/" });
        context.SetDefaultTimeout(90_000);
        var page = await context.NewPageAsync();
        try
        {
            await fx.SignInAsync(page, fx.Owner);
            Assert.Equal(fx.TenantA.TenantId, await page.GetAttributeAsync("#current-tenant", "data-tenant-id"));
            Assert.Equal("owner", await page.TextContentAsync("#role"));

            await page.SelectOptionAsync("#tenant-switch", fx.TenantB.TenantId);
            await page.ClickAsync("button:has-text('Switch')");
            await page.WaitForFunctionAsync(
                $"document.querySelector('#current-tenant')?.getAttribute('data-tenant-id') === '{fx.TenantB.TenantId}'");
            Assert.StartsWith(fx.ConsoleUrl, page.Url, StringComparison.Ordinal);
            Assert.Equal("editor", await page.TextContentAsync("#role"));
            Assert.Equal(0, await page.Locator("#password").CountAsync());

            // The token is B's now: B's job opens, A's is 404.
            Assert.Equal(200, (await page.GotoAsync($"/send-jobs/{fx.TenantB.JobId}"))!.Status);
            Assert.Equal(404, (await page.GotoAsync($"/send-jobs/{fx.TenantA.JobId}"))!.Status);

            // Back to A: Member Center signs the owner in to the tenant used last, and the other tests' owner session
            // (which may sign in after this test) expects A.
            await page.SelectOptionAsync("#tenant-switch", fx.TenantA.TenantId);
            await page.ClickAsync("button:has-text('Switch')");
            await page.WaitForFunctionAsync(
                $"document.querySelector('#current-tenant')?.getAttribute('data-tenant-id') === '{fx.TenantA.TenantId}'");
        }
        finally
        {
            await context.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_new_api_key_secret_is_shown_once()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            await page.GotoAsync("/credentials");
            var app = $"app-{Guid.NewGuid():N}"[..16];
            await page.FillAsync("#app-name", app);
            await page.ClickAsync("button:has-text('Create application')");
            await page.WaitForSelectorAsync($"h3:has-text('{app}')");
            var form = page.Locator("article", new() { Has = page.Locator($"h3:has-text('{app}')") });
            await form.Locator("input[name=name]").FillAsync("ci key");
            await form.Locator("input[name=expiresInDays]").FillAsync("30");
            await form.Locator("button:has-text('Create key')").ClickAsync();
            var secret = await page.TextContentAsync("#new-secret .secret-value");
            Assert.StartsWith("pgn_", secret);
            Assert.Contains("ci key", await form.TextContentAsync());

            await page.GotoAsync("/credentials");
            Assert.Equal(0, await page.Locator("#new-secret").CountAsync());
            Assert.DoesNotContain(secret!, await page.ContentAsync());
        });
    }

    [Fact]
    public async Task An_owner_invites_changes_a_role_and_cannot_demote_the_last_owner()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            await page.GotoAsync("/");
            await page.ClickAsync("nav a[href='/people']");
            await page.WaitForAddressAsync(url => url.EndsWith("/people", StringComparison.Ordinal));

            var invitee = $"invitee-{Guid.NewGuid():N}@console.example";
            await page.FillAsync("#invite-email", invitee);
            await page.SelectOptionAsync("#invite-role", "viewer");
            await page.ClickAsync("button:has-text('Invite')");
            var invited = page.Locator($"#invitations tr[data-email='{invitee}']");
            Assert.Equal("pending", await invited.Locator(".invitation-status").TextContentAsync());
            Assert.Contains("viewer", await invited.TextContentAsync());
            var mail = await fx.Mail.WaitForMailAsync(m => m.To.Contains(invitee), TimeSpan.FromSeconds(30));
            Assert.Contains(fx.TenantA.Name, mail.Subject);

            // An editor becomes an admin; the page (reloaded from the API) shows it.
            var erin = page.Locator($"#members tr[data-email='{fx.SecondEditor.Email}']");
            Assert.Equal("editor", await erin.Locator(".member-role").TextContentAsync());
            await erin.Locator("select").SelectOptionAsync("admin");
            await erin.Locator("button:has-text('Change role')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('Erin Editor is now admin')");
            Assert.Equal("admin", await page.Locator($"#members tr[data-email='{fx.SecondEditor.Email}'] .member-role").TextContentAsync());
            await page.ReloadAsync();
            Assert.Equal("admin", await page.Locator($"#members tr[data-email='{fx.SecondEditor.Email}'] .member-role").TextContentAsync());

            // The only owner demoting themselves: Member Center's 409 is shown on the page, nothing changes.
            var olive = page.Locator($"#members tr[data-email='{fx.Owner.Email}']");
            await olive.Locator("select").SelectOptionAsync("editor");
            await olive.Locator("button:has-text('Change role')").ClickAsync();
            // The page itself (not an error page) with the problem above it.
            await page.WaitForSelectorAsync("#problem");
            Assert.Equal("People", await page.TextContentAsync("h1"));
            Assert.Contains("owner", (await page.TextContentAsync("#problem"))!, StringComparison.OrdinalIgnoreCase);
            Assert.Equal("owner", await page.Locator($"#members tr[data-email='{fx.Owner.Email}'] .member-role").TextContentAsync());
            await page.AssertAccessibleAsync("/people (after the 409)");

            // A revoked invitation is gone.
            await page.Locator($"#invitations tr[data-email='{invitee}'] button:has-text('Revoke')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('revoked')");
            Assert.Equal(0, await page.Locator($"#invitations tr[data-email='{invitee}']").CountAsync());
        });
    }
}
