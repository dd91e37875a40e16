using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.WebUtilities;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Members, invitations, /api/me and the tenant's own clients, called with people's tokens from the real code flow.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed partial class PeopleApiTests(MemberCenterFixture mc)
{
    private async Task<(HttpClient Api, Features.People.Person Person)> SignedInAsync(TestTenant tenant, string role)
    {
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, role));
        using var client = new PersonClient(mc);
        var tokens = await client.SignInAsync(person.Email!, tenant.TenantId);
        return (mc.Http(tokens.GetProperty("access_token").GetString()), person);
    }

    [Fact]
    public async Task The_last_owner_can_be_neither_demoted_nor_removed()
    {
        var tenant = await mc.CreateTenantAsync();
        var (owner, ownerPerson) = await SignedInAsync(tenant, Roles.Owner);
        using var _ = owner;
        var editor = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Editor));

        var members = await MemberCenterFixture.ReadAsync<List<MemberResponse>>(await owner.GetAsync("/api/members"));
        Assert.Equal([Roles.Owner, Roles.Editor], members.Select(m => m.Role));

        using var demote = await owner.PatchAsJsonAsync($"/api/members/{ownerPerson.Id}", new UpdateMemberRequest(Roles.Admin), MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.Conflict, demote.StatusCode);
        Assert.Equal("application/problem+json", demote.Content.Headers.ContentType?.MediaType);
        using var remove = await owner.DeleteAsync($"/api/members/{ownerPerson.Id}");
        Assert.Equal(HttpStatusCode.Conflict, remove.StatusCode);

        // With a second owner, the first may step down.
        var promoted = await MemberCenterFixture.ReadAsync<MemberResponse>(
            await owner.PatchAsJsonAsync($"/api/members/{editor.Id}", new UpdateMemberRequest(Roles.Owner), MemberCenterFixture.Json));
        Assert.Equal(Roles.Owner, promoted.Role);
        using var stepDown = await owner.PatchAsJsonAsync($"/api/members/{ownerPerson.Id}", new UpdateMemberRequest(Roles.Viewer), MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.OK, stepDown.StatusCode);

        using var badRole = await owner.PatchAsJsonAsync($"/api/members/{editor.Id}", new UpdateMemberRequest("emperor"), MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.BadRequest, badRole.StatusCode);
        Assert.Contains("\"role\"", await badRole.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_viewer_cannot_manage_members_and_another_tenants_member_is_not_found()
    {
        var tenant = await mc.CreateTenantAsync();
        var other = await mc.CreateTenantAsync();
        var (viewer, _) = await SignedInAsync(tenant, Roles.Viewer);
        var (admin, _) = await SignedInAsync(tenant, Roles.Admin);
        var (owner, _) = await SignedInAsync(tenant, Roles.Owner);
        var (_, stranger) = await SignedInAsync(other, Roles.Owner);
        using (viewer)
        using (admin)
        using (owner)
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await viewer.GetAsync("/api/members")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsJsonAsync("/api/invitations", new CreateInvitationRequest("x@example.com", Roles.Owner), MemberCenterFixture.Json)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await admin.GetAsync("/api/members")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await admin.GetAsync("/api/clients")).StatusCode);

            Assert.Equal(HttpStatusCode.NotFound, (await owner.PatchAsJsonAsync($"/api/members/{stranger.Id}", new UpdateMemberRequest(Roles.Viewer), MemberCenterFixture.Json)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await owner.DeleteAsync($"/api/members/{stranger.Id}")).StatusCode);
            var members = await MemberCenterFixture.ReadAsync<List<MemberResponse>>(await owner.GetAsync("/api/members"));
            Assert.DoesNotContain(members, m => m.UserId == stranger.Id.ToString());
            Assert.All(members, m => Assert.Equal(tenant.TenantId, m.TenantId));

            // The other tenant's clients are out of reach too.
            Assert.Equal(HttpStatusCode.NotFound, (await owner.PostAsync($"/api/clients/{other.TenantClient.ClientId}/disable", null)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await owner.PostAsync($"/api/clients/{other.TenantClient.ClientId}/rotate-secret", null)).StatusCode);
        }
    }

    [Fact]
    public async Task An_owner_manages_the_tenants_clients()
    {
        var tenant = await mc.CreateTenantAsync();
        var (owner, _) = await SignedInAsync(tenant, Roles.Owner);
        using var _ = owner;
        var created = await MemberCenterFixture.ReadAsync<ApiClientSecretResponse>(
            await owner.PostAsJsonAsync("/api/clients", new CreateClientRequest(ClientUsages.SendApi, "Shop"), MemberCenterFixture.Json));
        Assert.Equal(tenant.TenantId, created.TenantId);
        await mc.TokenAsync(created.ClientId, created.ClientSecret);

        var rotated = await MemberCenterFixture.ReadAsync<ApiClientSecretResponse>(await owner.PostAsync($"/api/clients/{created.ClientId}/rotate-secret", null));
        using (var old = await mc.RequestTokenAsync(created.ClientId, created.ClientSecret))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
        }
        await mc.TokenAsync(created.ClientId, rotated.ClientSecret);

        Assert.Equal(HttpStatusCode.NoContent, (await owner.PostAsync($"/api/clients/{created.ClientId}/disable", null)).StatusCode);
        var clients = await MemberCenterFixture.ReadAsync<List<ApiClientResponse>>(await owner.GetAsync("/api/clients"));
        Assert.True(clients.Single(c => c.ClientId == created.ClientId).Disabled);
        using var refused = await mc.RequestTokenAsync(created.ClientId, rotated.ClientSecret);
        Assert.False(refused.IsSuccessStatusCode);
    }

    [Fact]
    public async Task An_invitation_mail_creates_the_account_and_the_membership_once()
    {
        var tenant = await mc.CreateTenantAsync("Invited Co");
        var (owner, ownerPerson) = await SignedInAsync(tenant, Roles.Owner);
        using var _ = owner;
        var email = $"invitee-{Guid.NewGuid():N}@example.com";
        var invitation = await MemberCenterFixture.ReadAsync<InvitationResponse>(
            await owner.PostAsJsonAsync("/api/invitations", new CreateInvitationRequest(email, Roles.Editor), MemberCenterFixture.Json));
        Assert.Equal("pending", invitation.Status);
        Assert.InRange(invitation.ExpiresAt - invitation.CreatedAt, TimeSpan.FromDays(6.99), TimeSpan.FromDays(7.01));
        var stored = await mc.WithDbAsync(db => Task.FromResult(db.Invitations.Single(i => i.Id == Guid.Parse(invitation.InvitationId))));
        Assert.Equal(ownerPerson.Id, stored.InvitedBy);

        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        Assert.Contains("Invited Co", mail.Subject);
        var link = new Uri(WebUtility.HtmlDecode(AcceptLink().Match(mail.Html!).Groups[1].Value));
        var token = QueryHelpers.ParseQuery(link.Query)["token"].ToString();
        // Only the token's SHA-256 is stored.
        var hash = await mc.WithDbAsync(db => Task.FromResult(db.Invitations.Single(i => i.Id == stored.Id).TokenHash));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(token)), hash);

        using var browser = new PersonClient(mc);
        var page = await browser.Http.GetAsync(link.PathAndQuery);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("Invited Co", html);
        using var accept = await browser.Http.PostAsync("/account/accept-invitation", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Token"] = token,
            ["Name"] = "Ivy Invitee",
            ["Password"] = PersonClient.Password,
            ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(html),
        }));
        Assert.Equal(HttpStatusCode.OK, accept.StatusCode);
        Assert.Contains("You are now a member", await accept.Content.ReadAsStringAsync());

        // The new account signs in straight away (the link proved the address) with the invited role.
        var jwt = PersonClient.AccessToken(await browser.SignInAsync(email));
        Assert.Equal(Roles.Editor, jwt.GetClaim("role").Value);
        Assert.Equal(tenant.TenantId, jwt.GetClaim("tenant_id").Value);

        var invitations = await MemberCenterFixture.ReadAsync<List<InvitationResponse>>(await owner.GetAsync("/api/invitations"));
        Assert.Equal("accepted", invitations.Single(i => i.InvitationId == invitation.InvitationId).Status);
        using var stranger = new PersonClient(mc);
        using var again = await stranger.Http.GetAsync(link.PathAndQuery);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task A_person_with_an_account_in_another_tenant_joins_through_an_invitation_and_the_owner_learns_nothing_about_accounts()
    {
        var tenant = await mc.CreateTenantAsync("Second Home");
        var elsewhere = await mc.CreateTenantAsync();
        var (owner, _) = await SignedInAsync(tenant, Roles.Owner);
        using var _ = owner;
        var existing = await PersonClient.CreatePersonAsync(mc, memberships: (elsewhere.TenantId, Roles.Owner));
        var unknown = $"nobody-{Guid.NewGuid():N}@example.com";

        // No tenant route adds by address (it answered 404 where no account had the address).
        using var direct = await owner.PostAsJsonAsync("/api/members", new { email = existing.Email, role = Roles.Editor }, MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, direct.StatusCode);

        // An invitation answers alike whether or not the address has an account.
        using var forExisting = await owner.PostAsJsonAsync("/api/invitations", new CreateInvitationRequest(existing.Email!, Roles.Admin), MemberCenterFixture.Json);
        using var forUnknown = await owner.PostAsJsonAsync("/api/invitations", new CreateInvitationRequest(unknown, Roles.Admin), MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.Created, forExisting.StatusCode);
        Assert.Equal(HttpStatusCode.Created, forUnknown.StatusCode);
        var a = System.Text.Json.JsonDocument.Parse(await forExisting.Content.ReadAsStringAsync()).RootElement;
        var b = System.Text.Json.JsonDocument.Parse(await forUnknown.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(a.EnumerateObject().Select(p => p.Name), b.EnumerateObject().Select(p => p.Name));
        Assert.Equal("pending", a.GetProperty("status").GetString());
        Assert.Equal("pending", b.GetProperty("status").GetString());

        // Signed in at Member Center as that person, the link accepts with one click (no password).
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(existing.Email!) && m.Subject.Contains("Second Home", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        var link = new Uri(WebUtility.HtmlDecode(AcceptLink().Match(mail.Html!).Groups[1].Value));
        var token = QueryHelpers.ParseQuery(link.Query)["token"].ToString();
        using var browser = new PersonClient(mc);
        await browser.SignInAsync(existing.Email!, elsewhere.TenantId);
        var html = await (await browser.Http.GetAsync(link.PathAndQuery)).Content.ReadAsStringAsync();
        Assert.Contains("signed-in-as-invited", html);
        Assert.DoesNotContain("id=\"password\"", html);
        using var accept = await browser.Http.PostAsync("/account/accept-invitation", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Token"] = token,
            ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(html),
        }));
        var accepted = await accept.Content.ReadAsStringAsync();
        Assert.True(accept.StatusCode == HttpStatusCode.OK, $"{(int)accept.StatusCode}: {accepted}");
        Assert.Contains("You are now a member", accepted);

        // Now a member of both tenants, with the invited role here and the old one there.
        var members = await MemberCenterFixture.ReadAsync<List<MemberResponse>>(await owner.GetAsync("/api/members"));
        Assert.Equal(Roles.Admin, members.Single(m => m.UserId == existing.Id.ToString()).Role);
        var roles = await mc.WithDbAsync(db => Task.FromResult(db.Memberships.Where(m => m.UserId == existing.Id).Select(m => m.Role).OrderBy(r => r).ToList()));
        Assert.Equal([Roles.Admin, Roles.Owner], roles);

        // Opened without that session, the same kind of link asks for the account's password instead.
        var second = await mc.CreateTenantAsync("Third Home");
        var (secondOwner, _) = await SignedInAsync(second, Roles.Owner);
        using (secondOwner)
        {
            Assert.Equal(HttpStatusCode.Created, (await secondOwner.PostAsJsonAsync("/api/invitations", new CreateInvitationRequest(existing.Email!, Roles.Viewer), MemberCenterFixture.Json)).StatusCode);
            var secondMail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(existing.Email!) && m.Subject.Contains("Third Home", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var secondLink = new Uri(WebUtility.HtmlDecode(AcceptLink().Match(secondMail.Html!).Groups[1].Value));
            using var anonymous = new PersonClient(mc);
            var page = await (await anonymous.Http.GetAsync(secondLink.PathAndQuery)).Content.ReadAsStringAsync();
            Assert.Contains("id=\"password\"", page);
            Assert.DoesNotContain("signed-in-as-invited", page);
        }
    }

    [Fact]
    public async Task Me_lists_the_memberships_for_the_tenant_switcher()
    {
        var a = await mc.CreateTenantAsync("Alpha");
        var b = await mc.CreateTenantAsync("Beta");
        var person = await PersonClient.CreatePersonAsync(mc, memberships: [(a.TenantId, Roles.Owner), (b.TenantId, Roles.Viewer)]);
        using var client = new PersonClient(mc);
        using var api = mc.Http((await client.SignInAsync(person.Email!, b.TenantId)).GetProperty("access_token").GetString());
        var me = await MemberCenterFixture.ReadAsync<MeResponse>(await api.GetAsync("/api/me"));
        Assert.Equal(person.Id.ToString(), me.UserId);
        Assert.Equal(b.TenantId, me.TenantId);
        Assert.Equal(Roles.Viewer, me.Role);
        Assert.False(me.PlatformOperator);
        Assert.Equal([(a.TenantId, Roles.Owner), (b.TenantId, Roles.Viewer)], me.Memberships.Select(m => (m.TenantId, m.Role)).Order());

        // A client_credentials token is no person.
        using var site = a.Api();
        Assert.Equal(HttpStatusCode.Forbidden, (await site.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_viewer_reads_a_subscription_without_its_preferences()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = $"reader-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email, new { topic = "secret-topic" });
        var (viewer, _) = await SignedInAsync(tenant, Roles.Viewer);
        var (editor, _) = await SignedInAsync(tenant, Roles.Editor);
        using (viewer)
        using (editor)
        {
            var url = $"/newsletter/preferences?list_id={tenant.ListId}&email={Uri.EscapeDataString(email)}";
            using var seen = await viewer.GetAsync(url);
            var body = await seen.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, seen.StatusCode);
            Assert.Contains("\"preferences\":null", body);
            Assert.DoesNotContain("secret-topic", body);
            Assert.Contains("secret-topic", await (await editor.GetAsync(url)).Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task The_admin_api_creates_an_operator_and_a_tenants_first_owner()
    {
        var tenant = await mc.CreateTenantAsync();
        using var admin = mc.Http(await mc.AdminTokenAsync());
        var email = $"operator-{Guid.NewGuid():N}@example.com";
        var person = await MemberCenterFixture.ReadAsync<PersonResponse>(await admin.PostAsJsonAsync("/admin/people",
            new CreatePersonRequest(email, "Olga Operator", PersonClient.Password, PlatformOperator: true), MemberCenterFixture.Json));
        Assert.True(person.PlatformOperator);
        Assert.False(person.EmailConfirmed);
        using var weak = await admin.PostAsJsonAsync("/admin/people", new CreatePersonRequest($"x{Guid.NewGuid():N}@example.com", null, "short"), MemberCenterFixture.Json);
        Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        Assert.Contains("\"password\"", await weak.Content.ReadAsStringAsync());

        var owner = await MemberCenterFixture.ReadAsync<MemberResponse>(await admin.PostAsJsonAsync($"/admin/tenants/{tenant.TenantId}/members",
            new AdminAddMemberRequest(person.UserId, null, Roles.Owner), MemberCenterFixture.Json));
        Assert.Equal(Roles.Owner, owner.Role);
        var members = await MemberCenterFixture.ReadAsync<List<MemberResponse>>(await admin.GetAsync($"/admin/tenants/{tenant.TenantId}/members"));
        Assert.Equal(person.UserId, members.Single().UserId);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/admin/tenants/{Guid.NewGuid()}/members")).StatusCode);

        // Unconfirmed: the password alone does not sign in until the mail's link is used.
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        using var client = new PersonClient(mc);
        using var refused = await client.PostLoginAsync(email, PersonClient.Password);
        Assert.Contains("confirm your e-mail address", await refused.Content.ReadAsStringAsync());
        var link = new Uri(WebUtility.HtmlDecode(ConfirmLink().Match(mail.Html!).Groups[1].Value));
        var page = await client.Http.GetAsync(link.PathAndQuery);
        var q = QueryHelpers.ParseQuery(link.Query);
        using var confirmed = await client.Http.PostAsync("/account/confirm-email", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["user_id"] = q["user_id"].ToString(),
            ["code"] = q["code"].ToString(),
            ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(await page.Content.ReadAsStringAsync()),
        }));
        Assert.Contains("Your address is confirmed", await confirmed.Content.ReadAsStringAsync());
        var jwt = PersonClient.AccessToken(await client.SignInAsync(email, tenant.TenantId));
        Assert.Equal(Roles.Operator, jwt.GetClaim("role").Value);
    }

    [GeneratedRegex("href=\"([^\"]+)\" id=\"accept-link\"")]
    private static partial Regex AcceptLink();

    [GeneratedRegex("href=\"([^\"]+)\" id=\"confirm-email-link\"")]
    private static partial Regex ConfirmLink();
}
