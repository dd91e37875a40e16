using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class NewsletterApiTests(MemberCenterFixture mc)
{
    private static string NewEmail(string tag = "reader") => $"{tag}-{Guid.NewGuid():N}@example.com";

    [Fact]
    public async Task Subscribe_sends_a_confirmation_mail_whose_link_confirms_once()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        var subscribed = await tenant.SubscribeAsync(email, new { lang = "zh-TW" });
        Assert.Equal("pending", subscribed.Status);
        Assert.NotNull(subscribed.ConfirmToken);
        Assert.True(subscribed.ConfirmTokenExpiresAt > DateTimeOffset.UtcNow.AddDays(6));

        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        var link = ExtractLink(mail.Text!, "/newsletter/confirm?token=");
        Assert.StartsWith(mc.BaseUri.ToString().TrimEnd('/'), link);

        using var http = mc.Http();
        using var first = new HttpRequestMessage(HttpMethod.Get, link);
        first.Headers.Accept.ParseAdd("application/json");
        using var confirmed = await http.SendAsync(first);
        var body = await MemberCenterFixture.ReadAsync<ConfirmResponse>(confirmed);
        Assert.Equal("confirmed", body.Status);
        Assert.Equal(email, body.Email);

        // The API's confirm_token was consumed with the mail's: confirmation happens once.
        using var again = new HttpRequestMessage(HttpMethod.Get, $"newsletter/confirm?token={subscribed.ConfirmToken}");
        again.Headers.Accept.ParseAdd("application/json");
        using var reused = await http.SendAsync(again);
        Assert.Equal(HttpStatusCode.OK, reused.StatusCode);

        var prefs = await GetPreferencesAsync(tenant, email);
        Assert.Equal("confirmed", prefs.Status);
        Assert.Equal("zh-TW", prefs.Preferences!["lang"].GetString());

        var actions = await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId)).OrderBy(c => c.Id).Select(c => new { c.Action, c.Source, c.IpAddress }).ToListAsync());
        Assert.Equal([("subscribe", "api"), ("confirm", "link")], actions.Select(a => (a.Action, a.Source)));
        Assert.All(actions, a => Assert.Equal("127.0.0.1", a.IpAddress));
    }

    [Fact]
    public async Task Confirm_answers_html_to_browsers_and_clear_errors_for_bad_tokens()
    {
        var tenant = await mc.CreateTenantAsync();
        var sub = await tenant.SubscribeAsync(NewEmail());
        using var http = mc.Http();

        var page = await http.GetAsync($"newsletter/confirm?token={sub.ConfirmToken}");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Subscription confirmed", await page.Content.ReadAsStringAsync());
        Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());

        var unknown = await http.GetAsync("newsletter/confirm?token=not-a-token");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("not valid", await unknown.Content.ReadAsStringAsync());

        using var json = new HttpRequestMessage(HttpMethod.Get, "newsletter/confirm?token=" + new string('a', 43));
        json.Headers.Accept.ParseAdd("application/json");
        using var problem = await http.SendAsync(json);
        Assert.Equal(HttpStatusCode.NotFound, problem.StatusCode);
        Assert.Equal("application/problem+json", problem.Content.Headers.ContentType?.MediaType);

        // Expiry: age the token in the database rather than waiting seven days.
        var expiring = await tenant.SubscribeAsync(NewEmail());
        var hash = SubscriptionTokens.Hash(expiring.ConfirmToken!);
        await mc.WithDbAsync(db => db.SubscriptionTokens.Where(t => t.Hash == hash).ExecuteUpdateAsync(u => u.SetProperty(t => t.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1))));
        var expired = await http.GetAsync($"newsletter/confirm?token={expiring.ConfirmToken}");
        Assert.Equal(HttpStatusCode.Gone, expired.StatusCode);
        Assert.Contains("expired", await expired.Content.ReadAsStringAsync());
        using var expiredJson = new HttpRequestMessage(HttpMethod.Get, $"newsletter/confirm?token={expiring.ConfirmToken}");
        expiredJson.Headers.Accept.ParseAdd("application/json");
        using var gone = await http.SendAsync(expiredJson);
        var goneProblem = JsonDocument.Parse(await gone.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
        Assert.Equal("https://tools.ietf.org/html/rfc9110#section-15.5.11", goneProblem.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(goneProblem.GetProperty("detail").GetString()));
    }

    [Fact]
    public async Task Resubscribing_a_confirmed_address_changes_nothing_and_an_unsubscribed_one_starts_over()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        var first = await tenant.SubscribeAsync(email, new { lang = "en" });
        await tenant.ConfirmAsync(first.ConfirmToken!);

        var again = await tenant.SubscribeAsync(email.ToUpperInvariant(), new { lang = "fr" });
        Assert.Equal("confirmed", again.Status);
        Assert.Null(again.ConfirmToken);
        Assert.Equal("en", (await GetPreferencesAsync(tenant, email)).Preferences!["lang"].GetString());
        // Still audited: the consent trail holds every subscribe request, this one marked as changing nothing.
        var trail = await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId)).OrderBy(c => c.Id)
            .Select(c => new { c.Action, c.Details }).ToListAsync());
        Assert.Equal(["subscribe", "confirm", "subscribe"], trail.Select(c => c.Action));
        Assert.Contains("already_confirmed", trail[2].Details);

        var unsubscribeToken = await tenant.UnsubscribeTokenAsync(email);
        using var http = mc.Http();
        var left = await MemberCenterFixture.ReadAsync<UnsubscribeResponse>(await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = unsubscribeToken }));
        Assert.Equal("unsubscribed", left.Status);

        var back = await tenant.SubscribeAsync(email);
        Assert.Equal("pending", back.Status);
        Assert.NotNull(back.ConfirmToken);
        await tenant.ConfirmAsync(back.ConfirmToken!);
        Assert.Equal("confirmed", (await GetPreferencesAsync(tenant, email)).Status);
    }

    [Fact]
    public async Task Unsubscribe_with_token_leaves_one_list_and_old_confirm_links_stop_working()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        var sub = await tenant.SubscribeAsync(email);
        var token = await tenant.UnsubscribeTokenAsync(email);
        using var http = mc.Http();
        using var response = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // Idempotent: the same link clicked twice is not an error.
        using var twice = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token });
        Assert.Equal(HttpStatusCode.OK, twice.StatusCode);

        using var confirm = new HttpRequestMessage(HttpMethod.Get, $"newsletter/confirm?token={sub.ConfirmToken}");
        confirm.Headers.Accept.ParseAdd("application/json");
        using var stale = await http.SendAsync(confirm);
        Assert.Equal(HttpStatusCode.NotFound, stale.StatusCode);
        Assert.Equal("unsubscribed", (await GetPreferencesAsync(tenant, email)).Status);

        using var bad = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = "nope" });
        Assert.Equal(HttpStatusCode.NotFound, bad.StatusCode);
        using var missing = await http.PostAsJsonAsync("newsletter/unsubscribe", new { });
        await AssertValidationError(missing, "token");
    }

    [Fact]
    public async Task One_click_unsubscribe_follows_RFC_8058()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
        var token = await tenant.UnsubscribeTokenAsync(email);

        using var http = mc.Http();
        using var response = await http.PostAsync($"newsletter/unsubscribe?token={token}",
            new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("unsubscribed", (await GetPreferencesAsync(tenant, email)).Status);
        var source = await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId) && c.Action == "unsubscribe").Select(c => c.Source).SingleAsync());
        Assert.Equal("one_click", source);
    }

    [Fact]
    public async Task Preferences_are_read_and_merged()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.SubscribeAsync(email, new { lang = "zh-TW", topic = "news" });
        using var api = tenant.Api();
        var updated = await MemberCenterFixture.ReadAsync<PreferencesResponse>(await api.PostAsJsonAsync("newsletter/preferences",
            new { list_id = tenant.ListId, email, preferences = new Dictionary<string, object?> { ["lang"] = "en", ["topic"] = null, ["frequency"] = "weekly" } }));
        Assert.Equal(["frequency", "lang"], updated.Preferences!.Keys.Order());
        Assert.Equal("en", updated.Preferences["lang"].GetString());
        Assert.Equal("en", (await GetPreferencesAsync(tenant, email)).Preferences!["lang"].GetString());

        using var missing = await api.GetAsync($"newsletter/preferences?list_id={tenant.ListId}&email={NewEmail()}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var noPrefs = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email });
        await AssertValidationError(noPrefs, "preferences");
    }

    [Fact]
    public async Task Invalid_input_answers_problem_json_with_the_offending_field()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        await AssertValidationError(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = tenant.ListId, email = "not-an-email" }), "email");
        await AssertValidationError(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = tenant.ListId, email = "a@b" }), "email");
        await AssertValidationError(await api.PostAsJsonAsync("newsletter/subscribe", new { email = NewEmail() }), "list_id");
        await AssertValidationError(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = "12", email = NewEmail() }), "list_id");
        await AssertValidationError(await api.PostAsJsonAsync("newsletter/unsubscribe-token", new { list_id = tenant.ListId }), "email");
        await AssertValidationError(await api.GetAsync("newsletter/preferences?email=x@example.com"), "list_id");

        using var malformed = await api.PostAsync("newsletter/subscribe", new StringContent("{\"list_id\": 5", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal("application/problem+json", malformed.Content.Headers.ContentType?.MediaType);

        using var wrongType = await api.PostAsync("newsletter/subscribe", new StringContent("{\"list_id\": 5, \"email\": []}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
    }

    [Fact]
    public async Task Emails_are_normalised_so_case_and_unicode_domains_name_one_subscriber()
    {
        var tenant = await mc.CreateTenantAsync();
        var local = $"Reader{Guid.NewGuid():N}";
        var sub = await tenant.SubscribeAsync($"  {local}@BÜCHER.example ");
        Assert.Equal($"{local}@xn--bcher-kva.example", sub.Email);
        await tenant.ConfirmAsync(sub.ConfirmToken!);
        var prefs = await GetPreferencesAsync(tenant, $"{local.ToLowerInvariant()}@bücher.example");
        Assert.Equal("confirmed", prefs.Status);
    }

    [Fact]
    public async Task Another_tenants_list_is_indistinguishable_from_a_missing_one()
    {
        var a = await mc.CreateTenantAsync("A");
        var b = await mc.CreateTenantAsync("B");
        var email = NewEmail();
        await a.SubscribeAsync(email);

        using var api = b.Api();
        using var subscribe = await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = a.ListId, email });
        using var missing = await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = Guid.NewGuid().ToString(), email });
        Assert.Equal(HttpStatusCode.NotFound, subscribe.StatusCode);
        Assert.Equal(await Detail(missing), await Detail(subscribe));

        using var token = await api.PostAsJsonAsync("newsletter/unsubscribe-token", new { list_id = a.ListId, email });
        Assert.Equal(HttpStatusCode.NotFound, token.StatusCode);
        using var prefs = await api.GetAsync($"newsletter/preferences?list_id={a.ListId}&email={email}");
        Assert.Equal(HttpStatusCode.NotFound, prefs.StatusCode);
    }

    [Fact]
    public async Task Tenant_routes_require_a_tenant_api_token_with_the_right_scope()
    {
        var tenant = await mc.CreateTenantAsync();
        var body = new { list_id = tenant.ListId, email = NewEmail() };

        using var anonymous = mc.Http();
        using var noToken = await anonymous.PostAsJsonAsync("newsletter/subscribe", body);
        Assert.Equal(HttpStatusCode.Unauthorized, noToken.StatusCode);
        Assert.Contains("Bearer", noToken.Headers.WwwAuthenticate.ToString());

        var readOnly = await mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret, Scopes.SubscriptionsRead);
        using var reader = mc.Http(readOnly);
        using var forbidden = await reader.PostAsJsonAsync("newsletter/subscribe", body);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);

        // A send_api token is for Send Engine (other audience), even though it belongs to the same tenant.
        var sendToken = await mc.TokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret);
        using var sender = mc.Http(sendToken);
        using var wrongAudience = await sender.PostAsJsonAsync("newsletter/subscribe", body);
        Assert.True(wrongAudience.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized);

        using var garbage = mc.Http("not.a.jwt");
        using var invalid = await garbage.PostAsJsonAsync("newsletter/subscribe", body);
        Assert.Equal(HttpStatusCode.Unauthorized, invalid.StatusCode);
    }

    [Fact]
    public async Task Tokens_are_stored_only_as_hashes()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        var sub = await tenant.SubscribeAsync(email);
        var unsubscribe = await tenant.UnsubscribeTokenAsync(email);
        var hashes = await mc.WithDbAsync(db => db.SubscriptionTokens.Select(t => t.Hash).ToListAsync());
        Assert.Contains(hashes, h => h.SequenceEqual(SubscriptionTokens.Hash(sub.ConfirmToken!)));
        Assert.Contains(hashes, h => h.SequenceEqual(SubscriptionTokens.Hash(unsubscribe)));
        Assert.All(hashes, h => Assert.Equal(32, h.Length));
        Assert.Equal(43, unsubscribe.Length); // 256 bits, base64url
    }

    internal static async Task<PreferencesResponse> GetPreferencesAsync(TestTenant tenant, string email)
    {
        using var api = tenant.Api();
        return await MemberCenterFixture.ReadAsync<PreferencesResponse>(await api.GetAsync($"newsletter/preferences?list_id={tenant.ListId}&email={Uri.EscapeDataString(email)}"));
    }

    internal static async Task AssertValidationError(HttpResponseMessage response, string field)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(body).RootElement;
            var errors = problem.GetProperty("errors");
            Assert.True(errors.TryGetProperty(field, out _), $"no error for {field}: {body}");
            // design.md: type, title, status and detail on every problem; the detail names the field.
            Assert.StartsWith("https://", problem.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()), body);
            Assert.Equal(400, problem.GetProperty("status").GetInt32());
            Assert.Contains(field, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
    }

    internal static string ExtractLink(string text, string marker)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text, @"https?://\S*" + System.Text.RegularExpressions.Regex.Escape(marker) + @"[A-Za-z0-9_-]+");
        Assert.True(match.Success, $"no link with {marker} in: {text}");
        return match.Value;
    }

    private static async Task<string?> Detail(HttpResponseMessage r) => JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString();
}
