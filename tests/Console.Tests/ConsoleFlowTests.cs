using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Playwright;
using Newsletter.Contracts;

namespace Console.Tests;

/// <summary>
/// The console's flows end to end in chromium, on the shared stack: a job's live progress over server-sent events, CSV
/// import and export, the compose preview for a chosen subscriber, suppressions, credentials, the operation log, and
/// the pages at phone width. Each test makes its own objects (lists, addresses, clients) so they do not depend on order.
/// </summary>
public sealed class ConsoleFlowTests(ConsoleFixture fx)
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    [Fact]
    public async Task A_running_job_shows_sent_and_remaining_change_live_without_a_reload()
    {
        // 48 × 0.25 s on one connection: 12 s of sending, so a page slowed by a busy machine still opens mid-job.
        const int recipients = 48;
        var tag = Unique("live");
        var csv = new StringBuilder("email\n");
        for (var i = 0; i < recipients; i++)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{tag}-{i:D2}@live.example\n");
        }
        var listId = await fx.ListWithSubscribersAsync(fx.TenantA, tag, csv.ToString());

        await fx.WithPageAsync(fx.Admin, async page =>
        {
            await page.GotoAsync($"/send-jobs/new?listId={listId}");
            await page.FillAsync("#job-name", tag);
            await page.FillAsync("#subject", "Live {{email}}");
            await page.FillAsync("#body-text", "Hello {{email}}");
            await page.ClickAsync("button:has-text('Create send job')");
            await page.WaitForAddressAsync(url => url.Contains("/send-jobs/", StringComparison.Ordinal) && !url.EndsWith("/new", StringComparison.Ordinal));
            Assert.Equal(tag, await page.TextContentAsync("h1"));
            // A marker that a reload or navigation would drop.
            await page.EvaluateAsync("() => { window.__sameDocument = true; }");

            // The relay answers each message after a delay on one connection: the counts move for seconds. The page's
            // counts change through the event stream (the live region gets sent/s), and end at all sent, 0 remaining.
            var firstSent = int.Parse((await page.TextContentAsync("[data-count=sent]"))!, CultureInfo.InvariantCulture);
            await page.WaitForFunctionAsync(
                "n => { const s = +document.querySelector('[data-count=sent]').textContent; const r = +document.querySelector('[data-count=remaining]').textContent; return s > n && r > 0; }",
                firstSent, new() { Timeout = 60_000, PollingInterval = 50 });
            Assert.Contains("sent/s", await page.TextContentAsync("[data-live]"));
            await page.WaitForFunctionAsync(
                $"() => document.querySelector('[data-count=sent]').textContent === '{recipients}' && document.querySelector('[data-count=remaining]').textContent === '0'",
                null, new() { Timeout = 90_000, PollingInterval = 100 });
            await page.WaitForFunctionAsync("() => document.getElementById('job-status').textContent === 'completed'", null, new() { Timeout = 30_000 });
            Assert.True(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"), "the page was reloaded");
            Assert.Equal(recipients, fx.Relay.Accepted.Count(a => a.Recipient.StartsWith(tag, StringComparison.Ordinal)));
        });
    }

    [Fact]
    public async Task A_csv_import_confirmed_with_a_note_and_pending_with_double_opt_in_shows_progress_counts_and_exports()
    {
        await fx.WithPageAsync(fx.Editor, async page =>
        {
            var name = Unique("import");
            await page.GotoAsync("/lists");
            await page.FillAsync("#name", name);
            await page.ClickAsync("button:has-text('Create list')");
            await page.WaitForAddressAsync(url => url.Contains("/lists/", StringComparison.Ordinal));
            var listUrl = page.Url;

            // Confirmed, with the consent note: three good rows (a preference column) and one bad one.
            var ada = $"{name}-ada@import.example";
            var confirmedCsv = $"email,first_name\n{ada},Ada\n{name}-bob@import.example,Bob\n{name}-cy@import.example,Cy\nnot-an-address,Nope\n";
            await ImportAsync(page, confirmedCsv, "confirmed", "Signed up at the fair");
            Assert.Contains("completed: 4 of 4 rows processed", await page.TextContentAsync("#import-status"));
            Assert.Equal("3", await page.TextContentAsync(".counts div:has(dt:text-is('Created')) dd"));
            Assert.Equal("1", await page.TextContentAsync(".counts div:has(dt:text-is('Invalid')) dd"));
            Assert.Equal(1, await page.Locator("h2:text-is('Invalid lines') + ul li").CountAsync());
            await page.AssertAccessibleAsync("import progress");

            // Pending, with double opt-in: each gets a confirmation mail.
            await page.GotoAsync(listUrl);
            var dee = $"{name}-dee@import.example";
            await ImportAsync(page, $"email\n{dee}\n", "double_opt_in", null);
            Assert.Equal("1", await page.TextContentAsync(".counts div:has(dt:text-is('Created')) dd"));
            await fx.Mail.WaitForMailAsync(m => m.To.Contains(dee), TimeSpan.FromSeconds(60));

            await page.GotoAsync(listUrl + "?status=pending");
            Assert.Contains(dee, await page.TextContentAsync("main"));
            Assert.DoesNotContain(ada, await page.TextContentAsync("main"));
            await page.GotoAsync(listUrl + "?status=confirmed");
            Assert.Contains(ada, await page.TextContentAsync("main"));

            // The subscriber's consent trail has the note.
            await page.GotoAsync($"/subscribers/{Uri.EscapeDataString(ada)}");
            Assert.Contains("Signed up at the fair", await page.TextContentAsync("main"));
            Assert.Contains("first_name=Ada", await page.TextContentAsync("main"));
            await page.AssertAccessibleAsync("subscriber");

            // The export is a download of the list's rows.
            await page.GotoAsync(listUrl);
            var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("a:has-text('Export as CSV')"));
            var exported = await File.ReadAllTextAsync((await download.PathAsync())!);
            Assert.StartsWith("email", exported, StringComparison.Ordinal);
            foreach (var address in new[] { ada, $"{name}-bob@import.example", $"{name}-cy@import.example", dee })
            {
                Assert.Contains(address, exported);
            }
            Assert.DoesNotContain("not-an-address", exported);
            Assert.Equal(5, exported.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        });
    }

    private static async Task ImportAsync(IPage page, string csv, string mode, string? note)
    {
        var form = page.Locator("form:has(#import-file)");
        await page.SetInputFilesAsync("#import-file", new FilePayload { Name = "people.csv", MimeType = "text/csv", Buffer = Encoding.UTF8.GetBytes(csv) });
        await form.Locator($"input[name=mode][value={mode}]").CheckAsync();
        if (note is not null)
        {
            await page.FillAsync("#import-note", note);
        }
        await form.Locator("button:has-text('Import')").ClickAsync();
        await page.WaitForAddressAsync(url => url.Contains("/imports/", StringComparison.Ordinal));
        // The page refreshes itself (meta refresh) until the import is done.
        await page.WaitForFunctionAsync("() => (document.querySelector('#import-status')?.textContent ?? '').startsWith('completed')",
            null, new() { Timeout = 60_000, PollingInterval = 250 });
    }

    [Fact]
    public async Task The_compose_preview_uses_the_chosen_subscribers_stored_preferences()
    {
        var tag = Unique("preview");
        var grace = $"{tag}-grace@preview.example";
        var listId = await fx.ListWithSubscribersAsync(fx.TenantA, tag, $"email,first_name,plan\n{grace},Grace,gold\n{tag}-alan@preview.example,Alan,free\n");
        await fx.WithPageAsync(fx.Editor, async page =>
        {
            await page.GotoAsync($"/send-jobs/new?listId={listId}");
            // The list's subscribers are offered as addresses.
            Assert.Equal(1, await page.Locator($"#list-subscribers option[value='{grace}']").CountAsync());
            await page.FillAsync("#job-name", tag);
            await page.FillAsync("#subject", "Hi {{first_name}}");
            await page.FillAsync("#body-text", "Dear {{ first_name }} ({{email}}), your plan: {{plan}}.");
            await page.FillAsync("#preview-email", grace.ToUpperInvariant());
            await page.ClickAsync("button:has-text('Preview')");
            await page.WaitForSelectorAsync("#preview");
            Assert.Equal("Hi Grace", await page.TextContentAsync("#preview-subject"));
            // The tenant's postal-address footer may follow, when another test has set one (the preview shows it like the job).
            Assert.StartsWith($"Dear Grace ({grace}), your plan: gold.", (await page.TextContentAsync("#preview-text"))!.Trim(), StringComparison.Ordinal);
            Assert.Contains("gold", await page.TextContentAsync("#preview-values"));
            await page.AssertAccessibleAsync("compose preview");

            // An address that is not on the chosen list is said so, with no preview.
            await page.FillAsync("#preview-email", $"{tag}-nobody@preview.example");
            await page.ClickAsync("button:has-text('Preview')");
            await page.WaitForSelectorAsync("#problem");
            Assert.Contains("not a subscriber of the chosen list", await page.TextContentAsync("#problem"));
            Assert.Equal(0, await page.Locator("#preview").CountAsync());
        });
    }

    [Fact]
    public async Task A_new_job_takes_a_from_address_and_name_and_the_apis_refusal_of_them_is_shown_on_the_form()
    {
        var tag = Unique("from");
        var listId = await fx.ListWithSubscribersAsync(fx.TenantA, tag, $"email\n{tag}@from.example\n");
        string jobId = "";
        await fx.WithPageAsync(fx.Editor, async page =>
        {
            await page.GotoAsync($"/send-jobs/new?listId={listId}");
            await page.FillAsync("#job-name", tag);
            await page.FillAsync("#subject", "From {{email}}");
            await page.FillAsync("#body-text", "Hello");
            // A name without an address: Send Engine's 400 names the field, and what was typed stays in the form.
            await page.FillAsync("#from-name", "Ada's Letters");
            await page.ClickAsync("button:has-text('Create send job')");
            await page.WaitForSelectorAsync("#problem:has-text('from_name')");
            Assert.Contains("from_name: The from_name needs a from_email.", await page.TextContentAsync("#problem"));
            Assert.Equal("Ada's Letters", await page.InputValueAsync("#from-name"));
            Assert.Equal(tag, await page.InputValueAsync("#job-name"));
            // A malformed address: the 400 is on from_email.
            await page.FillAsync("#from-email", "not an address");
            await page.ClickAsync("button:has-text('Create send job')");
            await page.WaitForSelectorAsync("#problem:has-text('from_email')");
            Assert.Equal("not an address", await page.InputValueAsync("#from-email"));
            await page.AssertAccessibleAsync("new send job (from refused)");

            await page.FillAsync("#from-email", "letters@from.example");
            await page.ClickAsync("button:has-text('Create send job')");
            await page.WaitForAddressAsync(url => url.Contains("/send-jobs/", StringComparison.Ordinal) && !url.Contains("/new", StringComparison.Ordinal));
            Assert.Equal("Ada's Letters <letters@from.example>", await page.TextContentAsync("#job-from"));
            jobId = page.Url[(page.Url.LastIndexOf('/') + 1)..];
        });
        using var se = await fx.SendEngineClientAsync(fx.TenantA);
        var job = (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{jobId}", ConsoleFixture.Json))!;
        Assert.Equal(("letters@from.example", "Ada's Letters"), (job.FromEmail, job.FromName));
    }

    [Fact]
    public async Task Suppressions_are_added_searched_and_removed()
    {
        await fx.WithPageAsync(fx.Admin, async page =>
        {
            var tag = Unique("sup");
            await page.GotoAsync("/suppressions");
            foreach (var (local, reason) in new[] { ("amy", "manual"), ("ann", "complaint"), ("bob", "hard_bounce") })
            {
                await page.FillAsync("#sup-email", $"{tag}-{local}@sup.example");
                await page.SelectOptionAsync("#sup-reason", reason);
                await page.ClickAsync("button:has-text('Suppress')");
                await page.WaitForSelectorAsync($"#notice:has-text('{tag}-{local}@sup.example is suppressed')");
            }

            // By prefix (any case), then narrowed by reason; the search stays in the address bar.
            await page.FillAsync("#q-email", tag.ToUpperInvariant() + "-A");
            await page.ClickAsync("button:has-text('Search')");
            await page.WaitForAddressAsync(url => url.Contains("email=", StringComparison.Ordinal));
            Assert.Equal(new[] { $"{tag}-amy@sup.example", $"{tag}-ann@sup.example" }, await Rows(page));
            await page.SelectOptionAsync("#q-reason", "complaint");
            await page.ClickAsync("button:has-text('Search')");
            await page.WaitForAddressAsync(url => url.Contains("reason=complaint", StringComparison.Ordinal));
            Assert.Equal(new[] { $"{tag}-ann@sup.example" }, await Rows(page));
            await page.SelectOptionAsync("#q-reason", "");
            await page.SelectOptionAsync("#q-source", "esp");
            await page.ClickAsync("button:has-text('Search')");
            await page.WaitForSelectorAsync("#no-suppressions");
            await page.AssertAccessibleAsync("/suppressions (search)");

            // Removed from a search: the same search is shown again without it.
            await page.GotoAsync($"/suppressions?email={tag}");
            Assert.Equal(3, (await Rows(page)).Count);
            await page.ClickAsync($"#suppressions tr[data-email='{tag}-amy@sup.example'] button:has-text('Remove')");
            await page.WaitForSelectorAsync($"#notice:has-text('{tag}-amy@sup.example is no longer suppressed')");
            Assert.Equal(new[] { $"{tag}-ann@sup.example", $"{tag}-bob@sup.example" }, await Rows(page));
            Assert.Equal(tag, await page.InputValueAsync("#q-email"));

            // A bad address is the API's 400, shown on the page.
            await page.EvaluateAsync("() => document.getElementById('sup-email').type = 'text'");
            await page.FillAsync("#sup-email", "not an address");
            await page.ClickAsync("button:has-text('Suppress')");
            await page.WaitForSelectorAsync("#problem");
            Assert.Equal("Suppressions", await page.TextContentAsync("h1"));
        });

        static async Task<List<string>> Rows(IPage page) =>
            (await page.Locator("#suppressions tbody tr").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.email)")).ToList();
    }

    [Fact]
    public async Task Credentials_clients_keys_and_webhook_endpoints_are_created_rotated_disabled_and_deleted()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            await page.GotoAsync("/credentials");
            // An OAuth client: its secret once, a rotation gives a new one, disabling it leaves no actions.
            var client = Unique("client");
            await page.SelectOptionAsync("#client-usage", "send_api");
            await page.FillAsync("#client-name", client);
            await page.ClickAsync("button:has-text('Create client')");
            var first = await page.TextContentAsync("#new-secret .secret-value");
            Assert.False(string.IsNullOrWhiteSpace(first));
            var row = page.Locator("tr", new() { Has = page.Locator($"td:text-is('{client}')") });
            var clientId = (await row.Locator("code").TextContentAsync())!;
            Assert.Equal(200, (await TokenStatusAsync(clientId, first!)));
            await row.Locator("button:has-text('Rotate secret')").ClickAsync();
            await page.WaitForSelectorAsync("#new-secret:has-text('New secret')");
            var second = await page.TextContentAsync("#new-secret .secret-value");
            Assert.NotEqual(first, second);
            Assert.Equal(200, await TokenStatusAsync(clientId, second!));
            await row.Locator("button:has-text('Disable')").ClickAsync();
            await page.WaitForSelectorAsync($"#notice:has-text('{clientId} is disabled')");
            Assert.Equal("disabled", await row.Locator("td").Nth(3).TextContentAsync());
            Assert.Equal(0, await row.Locator("button").CountAsync());
            Assert.NotEqual(200, await TokenStatusAsync(clientId, second!));

            // An API key with an expiry, then deleted.
            var app = Unique("app");
            await page.FillAsync("#app-name", app);
            await page.ClickAsync("button:has-text('Create application')");
            var card = page.Locator("article", new() { Has = page.Locator($"h3:text-is('{app}')") });
            await card.Locator("input[name=name]").FillAsync("temp key");
            await card.Locator("input[name=expiresInDays]").FillAsync("7");
            await card.Locator("button:has-text('Create key')").ClickAsync();
            Assert.StartsWith("pgn_", await page.TextContentAsync("#new-secret .secret-value"));
            var expires = await card.Locator("tr:has(td:text-is('temp key')) td").Nth(3).TextContentAsync();
            Assert.Equal(DateTimeOffset.UtcNow.AddDays(7).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), expires![..10]);
            await card.Locator("button:has-text('Delete')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('The key is deleted')");
            Assert.Equal(0, await page.Locator("article", new() { Has = page.Locator($"h3:text-is('{app}')") }).Locator("td:text-is('temp key')").CountAsync());

            // A webhook endpoint: its signing secret once; rotation shows a new one; the detail page; then deleted.
            var url = $"http://127.0.0.1:9/{Unique("hook")}";
            await page.FillAsync("#hook-url", url);
            await page.ClickAsync("button:has-text('Create endpoint')");
            await page.WaitForSelectorAsync("#new-secret:has-text('Signing secret')");
            var signing = await page.TextContentAsync("#new-secret .secret-value");
            Assert.False(string.IsNullOrWhiteSpace(signing));
            var hook = page.Locator("tr", new() { Has = page.Locator($"td:text-is('{url}')") });
            await hook.Locator("button:has-text('Rotate secret')").ClickAsync();
            await page.WaitForSelectorAsync("#new-secret:has-text('New signing secret')");
            Assert.NotEqual(signing, await page.TextContentAsync("#new-secret .secret-value"));
            await page.GotoAsync("/credentials");
            Assert.Equal(0, await page.Locator("#new-secret").CountAsync());
            Assert.DoesNotContain(signing!, await page.ContentAsync());
            await hook.Locator("a:has-text('Attempts')").ClickAsync();
            await page.WaitForAddressAsync(u => u.Contains("/credentials/webhooks/", StringComparison.Ordinal));
            Assert.Contains(url, await page.TextContentAsync("main"));
            await page.AssertAccessibleAsync("webhook endpoint");
            var endpointUrl = page.Url;
            await page.GotoAsync("/credentials");
            await hook.Locator("button:has-text('Delete')").ClickAsync();
            await page.WaitForSelectorAsync("#notice:has-text('The endpoint is deleted')");
            Assert.Equal(0, await page.Locator($"td:text-is('{url}')").CountAsync());
            Assert.Equal(404, (await page.GotoAsync(endpointUrl))!.Status);
        });
    }

    private async Task<int> TokenStatusAsync(string clientId, string secret)
    {
        using var http = new HttpClient { BaseAddress = new Uri(fx.MemberCenterUrl + "/") };
        using var response = await http.PostAsync("oauth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret,
        }));
        return (int)response.StatusCode;
    }

    [Fact]
    public async Task The_operation_log_is_filtered_and_exported()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            // A change through the console (Send Engine logs it) and one through the tenant's own API client.
            var address = $"{Unique("oplog")}@log.example";
            await page.GotoAsync("/suppressions");
            await page.FillAsync("#sup-email", address);
            await page.ClickAsync("button:has-text('Suppress')");
            await page.WaitForSelectorAsync("#notice");
            using (var se = await fx.SendEngineClientAsync(fx.TenantA))
            {
                using var added = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, "api-" + address, "manual"), ConsoleFixture.Json);
                Assert.True(added.IsSuccessStatusCode);
            }

            await page.GotoAsync("/operation-log");
            await page.SelectOptionAsync("#log-service", "send-engine");
            await page.FillAsync("#log-action", "addSuppression");
            await page.FillAsync("#log-actor", fx.Owner.Email);
            await page.ClickAsync("button:has-text('Filter')");
            await page.WaitForAddressAsync(url => url.Contains("action=addSuppression", StringComparison.Ordinal));
            var rows = page.Locator("main table tbody tr");
            Assert.True(await rows.CountAsync() >= 1);
            foreach (var text in await rows.AllTextContentsAsync())
            {
                Assert.Contains("addSuppression", text);
                Assert.Contains(fx.Owner.Email, text);
            }
            Assert.DoesNotContain(fx.TenantA.SendClientId, await page.TextContentAsync("main table"));
            await page.AssertAccessibleAsync("/operation-log (filtered)");

            // The export carries the same filter.
            var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("a:has-text('Export as CSV')"));
            var csv = await File.ReadAllTextAsync((await download.PathAsync())!);
            var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length >= 2, csv);
            Assert.All(lines.Skip(1), l => Assert.Contains("addSuppression", l));
            Assert.DoesNotContain(fx.TenantA.SendClientId, csv);

            // Without the actor filter the client's change is there too.
            var ndjson = await (await fx.SignedInAsync(fx.Owner)).APIRequest.GetAsync("/operation-log/export?service=send-engine&format=ndjson&action=addSuppression");
            Assert.Equal(200, ndjson.Status);
            Assert.Contains(fx.TenantA.SendClientId, await ndjson.TextAsync());
        });
    }

    [Fact]
    public async Task Another_tenants_objects_are_404_by_url_and_posts_without_the_token_are_refused()
    {
        // Tenant A's webhook endpoint, import and subscriber, through A's own API clients.
        var tag = Unique("iso");
        var listId = await fx.ListWithSubscribersAsync(fx.TenantA, tag, $"email\n{tag}@iso.example\n");
        using var se = await fx.SendEngineClientAsync(fx.TenantA);
        using var mc = await fx.MemberCenterClientAsync(fx.TenantA);
        var imports = await mc.GetStringAsync($"api/lists/{listId}/subscribers?limit=1");
        Assert.Contains(tag, imports);

        await fx.WithPageAsync(fx.OwnerOfB, async page =>
        {
            foreach (var path in new[] { $"/lists/{listId}", $"/lists/{listId}/export", $"/subscribers/{tag}@iso.example", $"/send-jobs/{fx.TenantA.JobId}/progress" })
            {
                var response = await page.APIRequest.GetAsync(path, new() { MaxRedirects = 0 });
                Assert.True(response.Status == 404, $"{path} answered {response.Status}");
                Assert.DoesNotContain($"{tag}@iso.example", await response.TextAsync());
            }
        });

        // CSRF: the session cookie without the antiforgery token is refused on a destructive handler, and nothing changes.
        var context = await fx.SignedInAsync(fx.Admin);
        var victim = $"{tag}-csrf@iso.example";
        using (var added = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, victim, "manual"), ConsoleFixture.Json))
        {
            Assert.True(added.IsSuccessStatusCode);
        }
        var form = context.APIRequest.CreateFormData();
        form.Set("email", victim);
        var forged = await context.APIRequest.PostAsync("/suppressions?handler=Remove", new() { Form = form, MaxRedirects = 0 });
        Assert.Equal(400, forged.Status);
        await context.WithPageAsync(async page2 =>
        {
            await page2.GotoAsync($"/suppressions?email={victim}");
            Assert.Equal(1, await page2.Locator($"#suppressions tr[data-email='{victim}']").CountAsync());
        });
    }

    [Fact]
    public async Task The_main_pages_fit_a_phone_screen()
    {
        await fx.WithPageAsync(fx.Owner, async page =>
        {
            await page.SetViewportSizeAsync(390, 844);
            var a = fx.TenantA;
            foreach (var path in new[] { "/", "/lists", $"/lists/{a.ListId}", "/send-jobs", $"/send-jobs/{a.JobId}", "/send-jobs/new", "/subscribers",
                         "/suppressions", "/transactional", "/credentials", "/operation-log", "/status" })
            {
                var response = await page.GotoAsync(path);
                Assert.True(response!.Status == 200, $"{path} answered {response.Status}");
                // Nothing wider than the screen (wide tables scroll inside their own region), the heading and the
                // navigation are on screen.
                var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
                Assert.True(overflow <= 0, $"{path} is {overflow}px wider than a phone");
                Assert.True(await page.Locator("h1").IsVisibleAsync(), $"{path}: no visible heading");
                var box = await page.Locator("h1").BoundingBoxAsync();
                Assert.True(box is not null && box.X >= 0 && box.X + box.Width <= 390, $"{path}: heading outside the screen");
                Assert.True(await page.Locator("nav a[href='/send-jobs']").IsVisibleAsync(), $"{path}: navigation hidden");
            }
        });
    }
}
