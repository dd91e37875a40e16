using System.Net;
using System.Net.Http.Json;
using System.Text;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>The console's subscriber routes: search, detail with consent trail, add, unsubscribe, CSV import and export.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class SubscriberDirectoryTests(MemberCenterFixture mc)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<AddSubscriberResponse> AddAsync(HttpClient api, string listId, string email, string mode = "confirmed",
        string? note = "signed up at the fair", object? preferences = null) =>
        await MemberCenterFixture.ReadAsync<AddSubscriberResponse>(await api.PostAsJsonAsync($"api/lists/{listId}/subscribers",
            new { email, mode, consent_note = note, preferences }, Ct));

    /// <summary>A token of the tenant's client limited to reads, like a viewer's: no newsletter:content.read.</summary>
    private async Task<HttpClient> ViewerAsync(TestTenant t) =>
        mc.Http(await mc.TokenAsync(t.TenantClient.ClientId, t.TenantClient.ClientSecret, $"{Scopes.SubscriptionsRead} {Scopes.ListsRead}"));

    [Fact]
    public async Task Search_finds_a_case_insensitive_prefix_in_address_order_page_by_page_and_filters_by_list_and_status()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var anns = new[] { "ann.c@example.com", "Ann.A@Example.com", "ann.e@example.org", "ANN.B@example.com", "ann.d@example.net" };
        foreach (var e in anns)
        {
            await AddAsync(api, tenant.ListId, e);
        }
        await AddAsync(api, tenant.ListId, "anna.pending@example.com", mode: "double_opt_in", note: null);
        await AddAsync(api, tenant.ListId, "bob@example.com");
        await AddAsync(api, tenant.ListId, "an@example.com");

        var seen = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await api.GetFromJsonAsync<SubscriberPage>($"api/subscribers?email=ANN.&limit=2{(cursor is null ? "" : "&after=" + cursor)}", MemberCenterFixture.Json, Ct);
            Assert.InRange(page!.Items.Count, 1, 2);
            seen.AddRange(page.Items.Select(i => i.Email));
            Assert.All(page.Items, i => Assert.Equal([new SubscriberListStatus(tenant.ListId, "confirmed")], i.Subscriptions));
            cursor = page.NextCursor;
            pages++;
        }
        while (cursor is not null);
        Assert.Equal(3, pages);
        Assert.Equal(["Ann.A@example.com", "ANN.B@example.com", "ann.c@example.com", "ann.d@example.net", "ann.e@example.org"], seen);

        var ann = await api.GetFromJsonAsync<SubscriberPage>("api/subscribers?email=ann", MemberCenterFixture.Json, Ct);
        Assert.Equal(6, ann!.Items.Count);
        var pending = await api.GetFromJsonAsync<SubscriberPage>($"api/subscribers?email=ann&list_id={tenant.ListId}&status=pending", MemberCenterFixture.Json, Ct);
        Assert.Equal(["anna.pending@example.com"], pending!.Items.Select(i => i.Email));
        var all = await api.GetFromJsonAsync<SubscriberPage>("api/subscribers", MemberCenterFixture.Json, Ct);
        Assert.Equal(8, all!.Items.Count);
        Assert.Equal("an@example.com", all.Items[0].Email);

        // Another tenant sees none of them, and cannot filter by this tenant's list.
        var other = await mc.CreateTenantAsync();
        using var otherApi = other.Api();
        Assert.Empty((await otherApi.GetFromJsonAsync<SubscriberPage>("api/subscribers?email=ann", MemberCenterFixture.Json, Ct))!.Items);
        using (var foreignList = await otherApi.GetAsync($"api/subscribers?list_id={tenant.ListId}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignList.StatusCode);
        }
        using (var bad = await api.GetAsync("api/subscribers?status=gone&limit=1000&after=x", Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var problem = await bad.Content.ReadAsStringAsync(Ct);
            Assert.Contains("\"status\"", problem);
            Assert.Contains("\"limit\"", problem);
            Assert.Contains("\"after\"", problem);
        }
    }

    [Fact]
    public async Task A_list_is_paged_newest_first_and_preferences_need_content_read()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        for (var i = 0; i < 5; i++)
        {
            await AddAsync(api, tenant.ListId, $"l{i}@example.com", preferences: new { lang = "de" });
        }
        await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/l1@example.com/unsubscribe", null, Ct);

        var first = await api.GetFromJsonAsync<ListSubscriberPage>($"api/lists/{tenant.ListId}/subscribers?limit=3", MemberCenterFixture.Json, Ct);
        var second = await api.GetFromJsonAsync<ListSubscriberPage>($"api/lists/{tenant.ListId}/subscribers?limit=3&after={first!.NextCursor}", MemberCenterFixture.Json, Ct);
        Assert.Equal(["l4@example.com", "l3@example.com", "l2@example.com", "l1@example.com", "l0@example.com"],
            first.Items.Concat(second!.Items).Select(i => i.Email));
        Assert.Null(second.NextCursor);
        Assert.Equal("de", first.Items[0].Preferences!["lang"].GetString());
        var unsubscribed = await api.GetFromJsonAsync<ListSubscriberPage>($"api/lists/{tenant.ListId}/subscribers?status=unsubscribed", MemberCenterFixture.Json, Ct);
        Assert.Equal(["l1@example.com"], unsubscribed!.Items.Select(i => i.Email));
        Assert.NotNull(unsubscribed.Items[0].UnsubscribedAt);

        using var viewer = await ViewerAsync(tenant);
        var limited = await viewer.GetFromJsonAsync<ListSubscriberPage>($"api/lists/{tenant.ListId}/subscribers", MemberCenterFixture.Json, Ct);
        Assert.Equal(5, limited!.Items.Count);
        Assert.All(limited.Items, i => Assert.Null(i.Preferences));
        using (var write = await viewer.PostAsJsonAsync($"api/lists/{tenant.ListId}/subscribers", new { email = "x@example.com", mode = "double_opt_in" }, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, write.StatusCode);
        }

        var other = await mc.CreateTenantAsync();
        using var otherApi = other.Api();
        using (var foreign = await otherApi.GetAsync($"api/lists/{tenant.ListId}/subscribers", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
    }

    [Fact]
    public async Task Detail_has_subscriptions_and_the_consent_trail_newest_first_with_the_note_and_content_only_with_content_read()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var email = $"Dora-{Guid.NewGuid():N}@Example.com";
        var added = await AddAsync(api, tenant.ListId, email, note: "paper form 2026-11-30", preferences: new { lang = "fr" });
        Assert.Equal(("confirmed", "created"), (added.Status, added.Outcome));
        var again = await AddAsync(api, tenant.ListId, email, note: "paper form again");
        Assert.Equal(("confirmed", "already_confirmed"), (again.Status, again.Outcome));
        using (var left = await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/{Uri.EscapeDataString(email.ToUpperInvariant())}/unsubscribe", null, Ct))
        {
            Assert.Equal("unsubscribed", (await MemberCenterFixture.ReadAsync<UnsubscribeResponse>(left)).Status);
        }

        var detail = await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/{Uri.EscapeDataString(email.ToLowerInvariant())}", MemberCenterFixture.Json, Ct);
        Assert.Equal(email.Split('@')[0] + "@example.com", detail!.Email);
        var subscription = Assert.Single(detail.Subscriptions);
        Assert.Equal((tenant.ListId, "Weekly", "unsubscribed"), (subscription.ListId, subscription.ListName, subscription.Status));
        Assert.NotNull(subscription.ConfirmedAt);
        Assert.Equal("fr", subscription.Preferences!["lang"].GetString());
        Assert.Equal(["unsubscribe", "subscribe", "subscribe"], detail.ConsentTrail.Select(c => c.Action));
        Assert.All(detail.ConsentTrail, c => Assert.Equal("api", c.Source));
        Assert.Equal([null, "paper form again", "paper form 2026-11-30"], detail.ConsentTrail.Select(c => c.Note));
        Assert.Equal("127.0.0.1", detail.ConsentTrail[^1].IpAddress);
        Assert.True(detail.ConsentTrail[^1].Details!.Value.GetProperty("confirmed").GetBoolean());
        Assert.True(detail.ConsentTrail[1].Details!.Value.GetProperty("already_confirmed").GetBoolean());
        var stored = await mc.WithDbAsync(db => db.ConsentRecords.AsNoTracking().Where(c => c.SubscriberId == Guid.Parse(detail.SubscriberId))
            .OrderBy(c => c.Id).Select(c => c.Details).FirstAsync(Ct));
        Assert.Contains("paper form 2026-11-30", stored);

        using var viewer = await ViewerAsync(tenant);
        var limited = await viewer.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/{Uri.EscapeDataString(email)}", MemberCenterFixture.Json, Ct);
        Assert.Null(Assert.Single(limited!.Subscriptions).Preferences);
        Assert.All(limited.ConsentTrail, c => Assert.Null(c.Details));
        Assert.Equal("paper form 2026-11-30", limited.ConsentTrail[^1].Note);

        var other = await mc.CreateTenantAsync();
        using var otherApi = other.Api();
        using (var foreign = await otherApi.GetAsync($"api/subscribers/{Uri.EscapeDataString(email)}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
            Assert.Equal("application/problem+json", foreign.Content.Headers.ContentType?.MediaType);
        }
        using (var foreignUnsubscribe = await otherApi.PostAsync($"api/lists/{tenant.ListId}/subscribers/{Uri.EscapeDataString(email)}/unsubscribe", null, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignUnsubscribe.StatusCode);
        }
        using (var foreignAdd = await otherApi.PostAsJsonAsync($"api/lists/{tenant.ListId}/subscribers", new { email = "y@example.com", mode = "double_opt_in" }, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignAdd.StatusCode);
        }
        using (var noNote = await api.PostAsJsonAsync($"api/lists/{tenant.ListId}/subscribers", new { email = "z@example.com", mode = "confirmed" }, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noNote.StatusCode);
            Assert.Contains("consent_note", await noNote.Content.ReadAsStringAsync(Ct));
        }
        using (var badMode = await api.PostAsJsonAsync($"api/lists/{tenant.ListId}/subscribers", new { email = "z@example.com", mode = "force" }, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badMode.StatusCode);
        }
    }

    [Fact]
    public async Task Double_opt_in_add_is_pending_and_mails_the_confirmation_through_the_outbox()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var email = $"doi-{Guid.NewGuid():N}@example.com";
        var added = await AddAsync(api, tenant.ListId, email, mode: "double_opt_in", note: "asked at the counter");
        Assert.Equal(("pending", "created"), (added.Status, added.Outcome));
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        Assert.Contains("confirm", (await mc.Mail.GetSourceAsync(mail.Id, Ct)), StringComparison.OrdinalIgnoreCase);
        var detail = await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/{email}", MemberCenterFixture.Json, Ct);
        Assert.Equal("pending", Assert.Single(detail!.Subscriptions).Status);
        Assert.Equal("asked at the counter", Assert.Single(detail.ConsentTrail).Note);
    }

    [Fact]
    public async Task Unsubscribing_through_the_console_route_reaches_the_change_feed_Send_Engine_reads()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var stays = $"stays-{Guid.NewGuid():N}@example.com";
        var leaves = $"leaves-{Guid.NewGuid():N}@example.com";
        await AddAsync(api, tenant.ListId, stays);
        await AddAsync(api, tenant.ListId, leaves);
        using var se = mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));
        var snapshot = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct);
        Assert.Equal(2, snapshot!.Items.Count);

        using (var left = await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/{leaves}/unsubscribe", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, left.StatusCode);
        }
        using (var again = await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/{leaves}/unsubscribe", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode); // idempotent: no second change
        }
        var feed = await se.GetFromJsonAsync<SubscriptionChangesPage>(
            $"internal/lists/{tenant.ListId}/changes?tenant_id={tenant.TenantId}&after={snapshot.ChangesCursor}", MemberCenterFixture.Json, Ct);
        var change = Assert.Single(feed!.Items);
        Assert.Equal((leaves, "unsubscribed"), (change.Email, change.Change));
        var after = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct);
        Assert.Equal([stays], after!.Items.Select(r => r.Email));
        using (var unknown = await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/nobody@example.com/unsubscribe", null, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }
    }

    /// <summary>3,000 lines: every 300th (from line 2) has a bad address, line 1500 a broken quote; the rest carry preferences.</summary>
    private static (string Csv, int Valid, List<int> InvalidLines) ImportFile(string tag)
    {
        var csv = new StringBuilder("email,lang,\"team, name\"\r\n");
        var invalid = new List<int>();
        var valid = 0;
        for (var i = 0; i < 3000; i++)
        {
            var line = i + 2;
            if (i % 300 == 0)
            {
                csv.Append(CultureInfo($"not-an-address-{i},de,x\r\n"));
                invalid.Add(line);
            }
            else if (i == 1498)
            {
                csv.Append(CultureInfo($"q{i}-{tag}@example.com,de,\"unclosed\"x\r\n"));
                invalid.Add(line);
            }
            else
            {
                csv.Append(CultureInfo($"imp{i:D5}-{tag}@example.com,{(i % 2 == 0 ? "en" : "")},\"Team \"\"{i}\"\", east\"\r\n"));
                valid++;
            }
        }
        invalid.Sort();
        return (csv.ToString(), valid, invalid);
    }

    private static string CultureInfo(FormattableString s) => FormattableString.Invariant(s);

    internal static async Task<SubscriberImportResponse> WaitForImportAsync(HttpClient api, string listId, string importId, Func<SubscriberImportResponse, bool>? until = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var status = await api.GetFromJsonAsync<SubscriberImportResponse>($"api/lists/{listId}/imports/{importId}", MemberCenterFixture.Json);
            if (until?.Invoke(status!) ?? status!.Status == "completed")
            {
                return status!;
            }
            Assert.True(DateTime.UtcNow < deadline, $"import {importId} still {status!.Status} ({status.Processed}/{status.TotalRows})");
            await Task.Delay(100);
        }
    }

    internal static async Task<SubscriberImportResponse> UploadAsync(HttpClient api, string listId, string csv, string mode = "confirmed", string? note = "imported from the old CRM")
    {
        using var content = new StringContent(csv, Encoding.UTF8, "text/csv");
        using var response = await api.PostAsync($"api/lists/{listId}/imports?mode={mode}{(note is null ? "" : "&consent_note=" + Uri.EscapeDataString(note))}", content);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<SubscriberImportResponse>(MemberCenterFixture.Json))!;
    }

    [Fact]
    public async Task A_CSV_import_counts_rows_and_invalid_lines_a_reimport_counts_skipped_and_updated_and_the_export_returns_the_rows()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        var tag = Guid.NewGuid().ToString("N")[..8];
        var (csv, valid, invalidLines) = ImportFile(tag);

        var accepted = await UploadAsync(api, tenant.ListId, csv);
        Assert.Equal(3000, accepted.TotalRows);
        Assert.Equal(invalidLines.Count, accepted.Invalid);
        var done = await WaitForImportAsync(api, tenant.ListId, accepted.ImportId);
        Assert.Equal((3000, 3000, valid, 0, 0, invalidLines.Count), (done.TotalRows, done.Processed, done.Created, done.Updated, done.Skipped, done.Invalid));
        Assert.Equal(invalidLines, done.InvalidLines.Select(l => l.Line));
        Assert.Contains("quote", done.InvalidLines.Single(l => l.Line == 1500).Reason);
        Assert.Contains("name@example.com", done.InvalidLines[0].Reason);

        var listId = Guid.Parse(tenant.ListId);
        Assert.Equal(valid, await mc.WithDbAsync(db => db.Subscriptions.CountAsync(s => s.ListId == listId && s.Status == SubscriptionStatus.Confirmed, Ct)));
        var one = await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/imp00002-{tag}@example.com", MemberCenterFixture.Json, Ct);
        var prefs = Assert.Single(one!.Subscriptions).Preferences!;
        Assert.Equal("en", prefs["lang"].GetString());
        Assert.Equal("Team \"2\", east", prefs["team, name"].GetString());
        var consent = Assert.Single(one.ConsentTrail);
        Assert.Equal(("subscribe", "import", "imported from the old CRM"), (consent.Action, consent.Source, consent.Note));
        Assert.Equal(4, consent.Details!.Value.GetProperty("line").GetInt32());
        var odd = await api.GetFromJsonAsync<SubscriberDetail>($"api/subscribers/imp00001-{tag}@example.com", MemberCenterFixture.Json, Ct);
        Assert.Equal(["team, name"], Assert.Single(odd!.Subscriptions).Preferences!.Keys); // an empty cell sets nothing

        // Two leave; importing the same file again brings them back (updated) and finds the rest already confirmed (skipped).
        await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/imp00001-{tag}@example.com/unsubscribe", null, Ct);
        await api.PostAsync($"api/lists/{tenant.ListId}/subscribers/imp00002-{tag}@example.com/unsubscribe", null, Ct);
        var second = await WaitForImportAsync(api, tenant.ListId, (await UploadAsync(api, tenant.ListId, csv)).ImportId);
        Assert.Equal((0, 2, valid - 2, invalidLines.Count), (second.Created, second.Updated, second.Skipped, second.Invalid));

        using (var export = await api.GetAsync($"api/lists/{tenant.ListId}/subscribers/export", HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, export.StatusCode);
            Assert.Equal("text/csv", export.Content.Headers.ContentType?.MediaType);
            var lines = (await export.Content.ReadAsStringAsync(Ct)).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("email,status,subscribed_at,confirmed_at,unsubscribed_at,preferences", lines[0]);
            Assert.Equal(valid + 1, lines.Length);
            var row = lines.Single(l => l.StartsWith($"imp00002-{tag}@example.com,", StringComparison.Ordinal));
            Assert.StartsWith($"imp00002-{tag}@example.com,confirmed,", row);
            Assert.Contains("\"\"lang\"\": \"\"en\"\"", row);
        }
        using var viewer = await ViewerAsync(tenant);
        var limited = await viewer.GetStringAsync($"api/lists/{tenant.ListId}/subscribers/export?status=confirmed", Ct);
        var limitedLines = limited.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("email,status,subscribed_at,confirmed_at,unsubscribed_at", limitedLines[0]);
        Assert.Equal(valid + 1, limitedLines.Length);
        Assert.DoesNotContain("lang", limited);

        var other = await mc.CreateTenantAsync();
        using var otherApi = other.Api();
        using (var foreign = await otherApi.GetAsync($"api/lists/{tenant.ListId}/imports/{accepted.ImportId}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
        using (var foreignExport = await otherApi.GetAsync($"api/lists/{tenant.ListId}/subscribers/export", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignExport.StatusCode);
        }
        using (var content = new StringContent("email\r\na@example.com\r\n", Encoding.UTF8, "text/csv"))
        using (var foreignImport = await otherApi.PostAsync($"api/lists/{tenant.ListId}/imports?mode=double_opt_in", content, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignImport.StatusCode);
        }
        using (var content = new StringContent("mail,lang\r\na@example.com,de\r\n", Encoding.UTF8, "text/csv"))
        using (var noEmail = await api.PostAsync($"api/lists/{tenant.ListId}/imports?mode=double_opt_in", content, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noEmail.StatusCode);
        }
        using (var content = new StringContent("email\r\na@example.com\r\n", Encoding.UTF8, "application/json"))
        using (var wrongType = await api.PostAsync($"api/lists/{tenant.ListId}/imports?mode=double_opt_in", content, Ct))
        {
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);
        }
    }
}
