using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>People sign in to the console: the authorization code flow with PKCE through the real login page.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class PersonSignInTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task Code_flow_with_pkce_issues_a_person_token_for_the_tenant_and_role()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Editor));
        using var client = new PersonClient(mc);

        var tokens = await client.SignInAsync(person.Email!);

        var jwt = PersonClient.AccessToken(tokens);
        Assert.Equal(person.Id.ToString(), jwt.Subject);
        Assert.Equal(MemberCenterFixture.ConsoleClientId, jwt.GetClaim("client_id").Value);
        Assert.Equal(tenant.TenantId, jwt.GetClaim("tenant_id").Value);
        Assert.Equal(Roles.Editor, jwt.GetClaim("role").Value);
        Assert.Equal(person.Email, jwt.GetClaim("email").Value);
        Assert.Equal("Pat Person", jwt.GetClaim("name").Value);
        Assert.Equal([Audiences.MemberCenterApi, Audiences.SendEngineApi], jwt.Audiences.Order());
        var scopes = jwt.GetClaim("scope").Value.Split(' ');
        Assert.Contains(Scopes.ContentRead, scopes);
        Assert.Contains(Scopes.SendWrite, scopes);
        Assert.DoesNotContain(Scopes.Members, scopes);
        Assert.DoesNotContain(Scopes.PlatformAdmin, scopes);
        Assert.True(tokens.TryGetProperty("refresh_token", out _), "offline_access was asked for");

        // The token works on Member Center's tenant API as the tenant's editor.
        using var api = mc.Http(tokens.GetProperty("access_token").GetString());
        var lists = await MemberCenterFixture.ReadAsync<List<MailingListResponse>>(await api.GetAsync("/api/lists"));
        Assert.Contains(lists, l => l.ListId == tenant.ListId);
    }

    [Fact]
    public async Task A_code_without_pkce_is_refused_and_a_wrong_verifier_gets_no_token()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Viewer));
        using var client = new PersonClient(mc);
        using (var signIn = await client.PostLoginAsync(person.Email!, PersonClient.Password))
        {
            Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        }

        // No code_challenge, or a plain one: OpenIddict answers invalid_request itself, and no code is issued.
        foreach (var url in new[] { PersonClient.AuthorizeUrl(challenge: null), PersonClient.AuthorizeUrl("a-plain-challenge-that-is-long-enough-0123456789", method: "plain") })
        {
            using var refused = await client.Http.GetAsync(url);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("error:invalid_request", await refused.Content.ReadAsStringAsync());
            Assert.Null(refused.Headers.Location);
        }

        var (_, challenge) = PersonClient.Pkce();
        var code = PersonClient.CodeOf(await client.FollowAsync(PersonClient.AuthorizeUrl(challenge)));
        using var wrong = await client.RedeemAsync(code, PersonClient.Pkce().Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        Assert.Equal("invalid_grant", JsonDocument.Parse(await wrong.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());

        var code2 = PersonClient.CodeOf(await client.FollowAsync(PersonClient.AuthorizeUrl(challenge)));
        using var missing = await client.RedeemAsync(code2, verifier: null);
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.DoesNotContain("access_token", await missing.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_code_is_redeemed_once_and_the_refresh_token_gives_a_new_token()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Admin));
        using var client = new PersonClient(mc);
        var (verifier, challenge) = PersonClient.Pkce();
        var code = await client.SignInForCodeAsync(person.Email!, challenge);
        var tokens = await PersonClient.ReadTokenAsync(await client.RedeemAsync(code, verifier));

        var refreshed = await PersonClient.ReadTokenAsync(await RefreshAsync(client, tokens.GetProperty("refresh_token").GetString()!));
        var jwt = PersonClient.AccessToken(refreshed);
        Assert.Equal(Roles.Admin, jwt.GetClaim("role").Value);
        Assert.Equal(tenant.TenantId, jwt.GetClaim("tenant_id").Value);

        // A replayed code is refused, and revokes what it was exchanged for (the code may have been stolen).
        using var again = await client.RedeemAsync(code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        using var revoked = await RefreshAsync(client, refreshed.GetProperty("refresh_token").GetString()!);
        Assert.Equal(HttpStatusCode.BadRequest, revoked.StatusCode);
    }

    private static Task<HttpResponseMessage> RefreshAsync(PersonClient client, string refreshToken) =>
        client.Http.PostAsync("/oauth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token",
            ["refresh_token"] = refreshToken,
            ["client_id"] = MemberCenterFixture.ConsoleClientId,
            ["client_secret"] = MemberCenterFixture.ConsoleClientSecret,
        }));

    [Fact]
    public async Task Five_wrong_passwords_lock_the_account()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Viewer));
        using var client = new PersonClient(mc);
        for (var i = 0; i < 5; i++)
        {
            using var wrong = await client.PostLoginAsync(person.Email!, "not the password at all");
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        }
        // The right password no longer helps.
        using var locked = await client.PostLoginAsync(person.Email!, PersonClient.Password);
        Assert.Equal(HttpStatusCode.BadRequest, locked.StatusCode);
        Assert.Contains("locked for 15 minutes", await locked.Content.ReadAsStringAsync());
        var lockoutEnd = await mc.WithDbAsync(db => Task.FromResult(db.Users.Single(u => u.Id == person.Id).LockoutEnd));
        Assert.NotNull(lockoutEnd);
        Assert.InRange(lockoutEnd.Value - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(14), TimeSpan.FromMinutes(15.1));
    }

    [Fact]
    public async Task Logout_ends_the_session_and_returns_to_the_console()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Viewer));
        using var client = new PersonClient(mc);
        await client.SignInAsync(person.Email!);

        var back = await client.FollowAsync(QueryHelpers.AddQueryString("/connect/logout", new Dictionary<string, string?>
        {
            ["client_id"] = MemberCenterFixture.ConsoleClientId,
            ["post_logout_redirect_uri"] = MemberCenterFixture.ConsoleUrl + "/signout-callback-oidc",
            ["state"] = "bye",
        }));
        Assert.StartsWith(MemberCenterFixture.ConsoleUrl + "/signout-callback-oidc", back.ToString(), StringComparison.Ordinal);
        var answer = await client.FollowAsync(PersonClient.AuthorizeUrl(PersonClient.Pkce().Challenge, prompt: "none"));
        Assert.Equal("login_required", QueryHelpers.ParseQuery(answer.Query)["error"].ToString());
    }

    [Fact]
    public async Task Prompt_none_without_a_session_answers_login_required()
    {
        using var client = new PersonClient(mc);
        var answer = await client.FollowAsync(PersonClient.AuthorizeUrl(PersonClient.Pkce().Challenge, prompt: "none"));
        Assert.Equal("login_required", QueryHelpers.ParseQuery(answer.Query)["error"].ToString());
    }

    [Fact]
    public async Task Switching_tenant_with_prompt_none_works_for_a_member_and_is_refused_otherwise()
    {
        var a = await mc.CreateTenantAsync("A");
        var b = await mc.CreateTenantAsync("B");
        var other = await mc.CreateTenantAsync("Other");
        var person = await PersonClient.CreatePersonAsync(mc, memberships: [(a.TenantId, Roles.Owner), (b.TenantId, Roles.Viewer)]);
        using var client = new PersonClient(mc);
        var first = PersonClient.AccessToken(await client.SignInAsync(person.Email!));
        Assert.Equal(a.TenantId, first.GetClaim("tenant_id").Value);
        Assert.Equal(Roles.Owner, first.GetClaim("role").Value);

        // One click: no page, no password; the token carries the other tenant and the role there.
        var (verifier, challenge) = PersonClient.Pkce();
        var code = PersonClient.CodeOf(await client.FollowAsync(PersonClient.AuthorizeUrl(challenge, tenantId: b.TenantId, prompt: "none")));
        var switched = PersonClient.AccessToken(await PersonClient.ReadTokenAsync(await client.RedeemAsync(code, verifier)));
        Assert.Equal(b.TenantId, switched.GetClaim("tenant_id").Value);
        Assert.Equal(Roles.Viewer, switched.GetClaim("role").Value);
        Assert.DoesNotContain(Scopes.ContentRead, switched.GetClaim("scope").Value.Split(' '));

        // Without tenant_id: the last tenant used.
        var (v2, c2) = PersonClient.Pkce();
        var code2 = PersonClient.CodeOf(await client.FollowAsync(PersonClient.AuthorizeUrl(c2, prompt: "none")));
        Assert.Equal(b.TenantId, PersonClient.AccessToken(await PersonClient.ReadTokenAsync(await client.RedeemAsync(code2, v2))).GetClaim("tenant_id").Value);

        var refused = await client.FollowAsync(PersonClient.AuthorizeUrl(PersonClient.Pkce().Challenge, tenantId: other.TenantId, prompt: "none"));
        var error = QueryHelpers.ParseQuery(refused.Query);
        Assert.Equal("access_denied", error["error"].ToString());
        Assert.False(error.ContainsKey("code"));
    }

    [Theory]
    [InlineData(Roles.Viewer, new[] { Scopes.ListsRead, Scopes.SubscriptionsRead, Scopes.SendRead, Scopes.LogsRead })]
    [InlineData(Roles.Editor, new[] { Scopes.ListsRead, Scopes.SubscriptionsRead, Scopes.SendRead, Scopes.LogsRead, Scopes.ContentRead, Scopes.ListsWrite, Scopes.SubscriptionsWrite, Scopes.SendWrite })]
    [InlineData(Roles.Admin, new[] { Scopes.ListsRead, Scopes.SubscriptionsRead, Scopes.SendRead, Scopes.LogsRead, Scopes.ContentRead, Scopes.ListsWrite, Scopes.SubscriptionsWrite, Scopes.SendWrite, Scopes.ApiKeysRead, Scopes.Webhooks, Scopes.SettingsWrite })]
    [InlineData(Roles.Owner, new[] { Scopes.ListsRead, Scopes.SubscriptionsRead, Scopes.SendRead, Scopes.LogsRead, Scopes.ContentRead, Scopes.ListsWrite, Scopes.SubscriptionsWrite, Scopes.SendWrite, Scopes.ApiKeysRead, Scopes.Webhooks, Scopes.SettingsWrite, Scopes.ApiKeysWrite, Scopes.Clients, Scopes.Members })]
    public async Task Each_role_gets_its_scopes(string role, string[] expected)
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, role));
        using var client = new PersonClient(mc);
        var jwt = PersonClient.AccessToken(await client.SignInAsync(person.Email!));
        Assert.Equal(role, jwt.GetClaim("role").Value);
        Assert.Equal(expected.Order(), jwt.GetClaim("scope").Value.Split(' ').Where(s => s is not "openid" and not "offline_access").Order());
    }

    [Fact]
    public async Task A_platform_operator_picks_any_tenant_and_gets_platform_admin()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, platformOperator: true);
        using var client = new PersonClient(mc);
        var jwt = PersonClient.AccessToken(await client.SignInAsync(person.Email!, tenant.TenantId));
        Assert.Equal(Roles.Operator, jwt.GetClaim("role").Value);
        Assert.Equal(tenant.TenantId, jwt.GetClaim("tenant_id").Value);
        Assert.Contains(Scopes.PlatformAdmin, jwt.GetClaim("scope").Value.Split(' '));
        Assert.Contains(Audiences.MemberCenterAdmin, jwt.Audiences);
    }
}
