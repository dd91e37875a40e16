using System.Text.Json;
using System.Net;
using System.Net.Http.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using OpenIddict.EntityFrameworkCore.Models;

namespace MemberCenter.Tests;

/// <summary>Edges of the newsletter routes: writes across tenants, token lifetimes and expiry, the consent trail.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class NewsletterEdgeTests(MemberCenterFixture mc)
{
    private static string NewEmail() => $"edge-{Guid.NewGuid():N}@example.com";

    [Fact]
    public async Task Another_tenant_cannot_write_preferences_on_a_list_it_does_not_own()
    {
        var owner = await mc.CreateTenantAsync();
        var email = NewEmail();
        await owner.ConfirmAsync((await owner.SubscribeAsync(email, new { lang = "en" })).ConfirmToken!);
        var other = await mc.CreateTenantAsync("Other");
        using var api = other.Api();

        using var write = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = owner.ListId, email, preferences = new { lang = "fr" } });
        using var token = await api.PostAsJsonAsync("newsletter/unsubscribe-token", new { list_id = owner.ListId, email });

        Assert.Equal(HttpStatusCode.NotFound, write.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, token.StatusCode);
        using var ownerApi = owner.Api();
        var prefs = await ownerApi.GetFromJsonAsync<PreferencesResponse>($"newsletter/preferences?list_id={owner.ListId}&email={email}", MemberCenterFixture.Json);
        Assert.Equal("en", prefs!.Preferences!["lang"].GetString());
    }

    [Fact]
    public async Task Unsubscribe_tokens_last_sixty_days_and_an_expired_one_is_410_while_an_unknown_one_is_404()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
        using var api = tenant.Api();
        var issued = await MemberCenterFixture.ReadAsync<UnsubscribeTokenResponse>(await api.PostAsJsonAsync("newsletter/unsubscribe-token", new { list_id = tenant.ListId, email }));
        Assert.InRange(issued.ExpiresAt, DateTimeOffset.UtcNow.AddDays(59.9), DateTimeOffset.UtcNow.AddDays(60.1));

        var hash = SubscriptionTokens.Hash(issued.UnsubscribeToken);
        await mc.WithDbAsync(db => db.SubscriptionTokens.Where(t => t.Hash == hash).ExecuteUpdateAsync(u => u.SetProperty(t => t.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1))));
        using var http = mc.Http();
        using var expired = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = issued.UnsubscribeToken });
        Assert.Equal(HttpStatusCode.Gone, expired.StatusCode);
        using var oneClick = await http.PostAsync($"newsletter/unsubscribe?token={issued.UnsubscribeToken}",
            new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }));
        Assert.Equal(HttpStatusCode.Gone, oneClick.StatusCode);
        using var unknown = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = new string('b', 43) });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        // The pages answer an invalid link with a page, not an error dump.
        foreach (var page in new[] { "newsletter/unsubscribe?token=", "newsletter/manage?token=" })
        {
            using var response = await http.GetAsync(page + issued.UnsubscribeToken);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("not valid", await response.Content.ReadAsStringAsync());
        }
        var prefs = await api.GetFromJsonAsync<PreferencesResponse>($"newsletter/preferences?list_id={tenant.ListId}&email={email}", MemberCenterFixture.Json);
        Assert.Equal("confirmed", prefs!.Status);
    }

    [Fact]
    public async Task The_consent_trail_records_every_change_with_its_source_address_and_user_agent()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        using var api = tenant.Api();
        api.DefaultRequestHeaders.UserAgent.ParseAdd("TenantSite/2.1");
        await MemberCenterFixture.ReadAsync<SubscribeResponse>(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = tenant.ListId, email }));
        var confirmToken = (await tenant.SubscribeAsync(email)).ConfirmToken!;
        await tenant.ConfirmAsync(confirmToken);
        using (var changed = await api.PostAsJsonAsync("newsletter/preferences", new { list_id = tenant.ListId, email, preferences = new { lang = "de" } }))
        {
            Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        }
        using var http = mc.Http();
        http.DefaultRequestHeaders.UserAgent.ParseAdd("Reader/1.0");
        using (var left = await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = await tenant.UnsubscribeTokenAsync(email) }))
        {
            Assert.Equal(HttpStatusCode.OK, left.StatusCode);
        }

        var trail = await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId)).OrderBy(c => c.Id)
            .Select(c => new { c.Action, c.Source, c.IpAddress, c.UserAgent, c.Details }).ToListAsync());
        var byAction = trail.GroupBy(c => c.Action).ToDictionary(g => g.Key, g => g.Last());
        Assert.Equal(("api", "TenantSite/2.1"), (byAction["preferences_updated"].Source, byAction["preferences_updated"].UserAgent));
        Assert.Contains("de", byAction["preferences_updated"].Details);
        // The JSON route is the tenant site acting for the reader: source api (the page's form is "link", one-click "one_click").
        Assert.Equal(("api", "Reader/1.0"), (byAction["unsubscribe"].Source, byAction["unsubscribe"].UserAgent));
        Assert.Equal("TenantSite/2.1", trail.First(c => c.Action == "subscribe").UserAgent);
        Assert.All(trail, c => Assert.Equal("127.0.0.1", c.IpAddress));
    }

    [Fact]
    public async Task Client_secrets_are_stored_hashed()
    {
        var tenant = await mc.CreateTenantAsync();

        var stored = await mc.WithDbAsync(db => db.Set<OpenIddictEntityFrameworkCoreApplication>()
            .Where(a => a.ClientId == tenant.SendClient.ClientId).Select(a => a.ClientSecret).SingleAsync());

        Assert.NotNull(stored);
        Assert.DoesNotContain(tenant.SendClient.ClientSecret, stored);
        Assert.NotEqual(tenant.SendClient.ClientSecret, stored);
    }

    [Fact]
    public async Task Health_answers_and_swagger_declares_the_bearer_scheme()
    {
        using var http = mc.Http();

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode);
        http.DefaultRequestHeaders.Authorization = MemberCenterFixture.ManagementAuthorization;
        var swagger = await http.GetStringAsync("swagger/v1/swagger.json");
        Assert.Contains("\"bearer\"", swagger);
        var paths = JsonDocument.Parse(swagger).RootElement.GetProperty("paths");
        // Bearer routes say so; the token-in-link pages and the OAuth endpoints say they are open (security: []).
        Assert.Equal(1, paths.GetProperty("/newsletter/subscribe").GetProperty("post").GetProperty("security").GetArrayLength());
        Assert.Equal(1, paths.GetProperty("/admin/tenants").GetProperty("post").GetProperty("security").GetArrayLength());
        Assert.Equal(0, paths.GetProperty("/newsletter/confirm").GetProperty("get").GetProperty("security").GetArrayLength());
        var token = paths.GetProperty("/oauth/token").GetProperty("post");
        Assert.Equal(0, token.GetProperty("security").GetArrayLength());
        Assert.Equal("issueToken", token.GetProperty("operationId").GetString());
        Assert.True(token.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/x-www-form-urlencoded", out _));
        Assert.True(paths.TryGetProperty("/.well-known/openid-configuration", out _));
        Assert.True(paths.TryGetProperty("/.well-known/jwks", out _));
        // Still answered by OpenIddict, not by the placeholders that list them.
        Assert.Contains("jwks_uri", await http.GetStringAsync(".well-known/openid-configuration"));
        Assert.Contains("\"keys\"", await http.GetStringAsync(".well-known/jwks"));
    }
}
