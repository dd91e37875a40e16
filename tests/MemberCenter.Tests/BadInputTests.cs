using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Input PostgreSQL would refuse, and limits that must hold for what is stored: 4xx answers, never a 500.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class BadInputTests(MemberCenterFixture mc)
{
    private static string NewEmail() => $"bad-{Guid.NewGuid():N}@example.com";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Theory]
    [InlineData("""{"k":"a\u0000b"}""")] // PostgreSQL's text and jsonb refuse NUL
    [InlineData("""{"k\u0000":"v"}""")]
    [InlineData("""{"k":1e200000}""")] // overflows jsonb's numeric
    [InlineData("""{"k":[{"deep":"\u0000"}]}""")]
    public async Task Unstorable_preferences_are_a_400_naming_the_field(string preferences)
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();

        using var response = await api.PostAsync("newsletter/subscribe", Json($$"""{"list_id":"{{tenant.ListId}}","email":"{{NewEmail()}}","preferences":{{preferences}}}"""));

        var problem = await ProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("preferences", out _), problem.ToString());
    }

    [Theory]
    [InlineData("application/json; charset=bogus")]
    [InlineData("application/json; charset=\"utf-7\"")]
    public async Task A_json_body_in_an_unknown_charset_is_a_415(string contentType)
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();
        HttpContent Body(string json)
        {
            var content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            return content;
        }

        using var subscribe = await api.PostAsync("newsletter/subscribe", Body($$"""{"list_id":"{{tenant.ListId}}","email":"{{NewEmail()}}"}"""));
        var problem = await ProblemAsync(subscribe, HttpStatusCode.UnsupportedMediaType);
        Assert.Contains("charset", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        using var anonymous = mc.Http();
        using var unsubscribe = await anonymous.PostAsync("newsletter/unsubscribe", Body("""{"token":"x"}"""));
        await ProblemAsync(unsubscribe, HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task A_lone_surrogate_in_preferences_is_a_400()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();

        // System.Text.Json itself refuses to read it into a JsonElement.
        using var response = await api.PostAsync("newsletter/subscribe", Json($$$"""{"list_id":"{{{tenant.ListId}}}","email":"{{{NewEmail()}}}","preferences":{"k":"\udc00"}}"""));

        await ProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Nul_characters_in_strings_and_query_values_are_a_400()
    {
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();

        using var list = await api.PostAsync("api/lists", Json("""{"name":"News\u0000letter"}"""));
        var listProblem = await ProblemAsync(list, HttpStatusCode.BadRequest);
        Assert.True(listProblem.ToString().Contains("NUL", StringComparison.Ordinal), listProblem.ToString());

        using var email = await api.PostAsync("newsletter/subscribe", Json($$"""{"list_id":"{{tenant.ListId}}","email":"a\udc00@example.com"}"""));
        await ProblemAsync(email, HttpStatusCode.BadRequest);

        using var query = await api.GetAsync($"newsletter/preferences?list_id={tenant.ListId}&email=a%00@example.com");
        Assert.Contains("email", (await ProblemAsync(query, HttpStatusCode.BadRequest)).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Preference_limits_hold_for_the_merged_result()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
        using var api = tenant.Api();
        Dictionary<string, int> Keys(int from) => Enumerable.Range(from, 30).ToDictionary(i => "k" + i, i => i);

        using var first = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = Keys(0) });
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var second = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = Keys(30) });
        var problem = await ProblemAsync(second, HttpStatusCode.BadRequest);
        Assert.Contains("60 keys", problem.GetProperty("errors").GetProperty("preferences")[0].GetString());

        // Nothing of the refused change was kept; removing keys (null) still works.
        var stored = await api.GetFromJsonAsync<PreferencesResponse>($"newsletter/preferences?list_id={tenant.ListId}&email={email}", MemberCenterFixture.Json);
        Assert.Equal(30, stored!.Preferences!.Count);
        using var removal = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = new Dictionary<string, int?> { ["k0"] = null } });
        Assert.Equal(HttpStatusCode.OK, removal.StatusCode);
    }

    [Fact]
    public async Task The_preference_centre_keeps_each_values_type_and_adds_no_keys()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email, new { weekly = true, topics = new[] { "a" }, name = "Ann", count = 3 })).ConfirmToken!);
        var token = await tenant.UnsubscribeTokenAsync(email);
        using var http = mc.Http();

        using var saved = await http.PostAsync("newsletter/manage", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["token"] = token,
            ["pref:weekly"] = "false",
            ["pref:topics"] = """["a","b"]""",
            ["pref:name"] = "true",
            ["pref:count"] = "4",
            ["pref:injected"] = "x",
        }));
        Assert.Equal(HttpStatusCode.OK, saved.StatusCode);
        using var api = tenant.Api();
        var prefs = (await api.GetFromJsonAsync<PreferencesResponse>($"newsletter/preferences?list_id={tenant.ListId}&email={email}", MemberCenterFixture.Json))!.Preferences!;
        Assert.Equal(JsonValueKind.False, prefs["weekly"].ValueKind);
        Assert.Equal(["a", "b"], prefs["topics"].EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("true", prefs["name"].GetString());
        Assert.Equal(4, prefs["count"].GetInt32());
        Assert.False(prefs.ContainsKey("injected"));

        // A value of another kind is refused with the form shown again, and nothing changes.
        using var refused = await http.PostAsync("newsletter/manage", new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token, ["pref:count"] = "many", ["pref:weekly"] = "true" }));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Contains("id=\"error\"", await refused.Content.ReadAsStringAsync());
        var after = (await api.GetFromJsonAsync<PreferencesResponse>($"newsletter/preferences?list_id={tenant.ListId}&email={email}", MemberCenterFixture.Json))!.Preferences!;
        Assert.Equal(JsonValueKind.False, after["weekly"].ValueKind);
    }

    [Fact]
    public async Task A_confirm_token_used_to_unsubscribe_is_unknown_not_expired()
    {
        var tenant = await mc.CreateTenantAsync();
        var subscribed = await tenant.SubscribeAsync(NewEmail());
        using var http = mc.Http();

        using var response = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = subscribed.ConfirmToken });

        await ProblemAsync(response, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_internal_not_sendable_check_refuses_null_entries()
    {
        var tenant = await mc.CreateTenantAsync();
        using var se = mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));

        using var response = await se.PostAsync($"internal/lists/{tenant.ListId}/not-sendable", Json($$"""{"tenant_id":"{{tenant.TenantId}}","emails":["a@example.com",null]}"""));

        Assert.True((await ProblemAsync(response, HttpStatusCode.BadRequest)).GetProperty("errors").TryGetProperty("emails", out _));
    }

    [Fact]
    public async Task A_confirmation_mail_that_cannot_be_built_fails_alone_and_the_rest_of_its_batch_goes_out()
    {
        var tenant = await mc.CreateTenantAsync();
        var good = NewEmail();
        var bad = NewEmail();
        await tenant.SubscribeAsync(bad);
        await mc.Mail.WaitForMailAsync(m => m.To.Contains(bad), TimeSpan.FromSeconds(30));
        // An address MimeKit cannot parse, as a row written by an older version might hold; subscribing again (still
        // pending) queues a new confirmation mail for it.
        await mc.WithDbAsync(db => db.Subscribers.Where(s => s.Email == bad).ExecuteUpdateAsync(u => u.SetProperty(s => s.Email, "not an address")));
        // As if the confirmation-mail interval had passed, so the subscribe queues a mail.
        await mc.WithDbAsync(db => db.Subscriptions.Where(s => db.Subscribers.Any(p => p.Id == s.SubscriberId && p.Email == "not an address" && p.TenantId == Guid.Parse(tenant.TenantId)))
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.ConfirmMailLastAt, s => s.ConfirmMailLastAt - TimeSpan.FromMinutes(11))));
        var badSubscription = await tenant.SubscribeAsync(bad);
        await tenant.SubscribeAsync(good);

        await mc.Mail.WaitForMailAsync(m => m.To.Contains(good), TimeSpan.FromSeconds(30));
        var hash = SubscriptionTokens.Hash(badSubscription.ConfirmToken!);
        var subscriptionId = await mc.WithDbAsync(db => db.SubscriptionTokens.Where(t => t.Hash == hash).Select(t => t.SubscriptionId).SingleAsync());
        var row = await WaitForAsync(() => mc.WithDbAsync(db => db.OutboxMessages.AsNoTracking().Where(m => m.SubscriptionId == subscriptionId && m.LastError != null).FirstOrDefaultAsync()));
        Assert.Contains("could not be built", row.LastError);
        Assert.Null(row.SentAt);
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe) where T : class
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (await probe() is { } value)
            {
                return value;
            }
            Assert.True(DateTime.UtcNow < until, "timed out");
            await Task.Delay(100);
        }
    }
}
