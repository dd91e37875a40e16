using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Stateless unsubscribe links: link keys (rotation, retirement, encryption at rest), the link-key and list routes.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class UnsubscribeLinkKeyTests(MemberCenterFixture mc)
{
    private static readonly FormUrlEncodedContent OneClick = new(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" });
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private LinkKeyRing Ring => mc.Services.GetRequiredService<LinkKeyRing>();

    private async Task<HttpClient> SendEngineAsync() =>
        mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));

    private static async Task<string> ConfirmedAsync(TestTenant tenant)
    {
        var email = $"l-{Guid.NewGuid():N}@example.com";
        var sub = await tenant.SubscribeAsync(email, new { lang = "en" });
        await tenant.ConfirmAsync(sub.ConfirmToken!);
        return email;
    }

    private Task<int> TokenRowsAsync(TestTenant tenant) => mc.WithDbAsync(db =>
        db.SubscriptionTokens.CountAsync(t => db.Subscriptions.Any(s => s.Id == t.SubscriptionId && s.ListId == Guid.Parse(tenant.ListId))));

    private async Task<LinkKeyResponse> LinkKeyAsync(HttpClient se, TestTenant tenant, string? keyId = null, long? issuedAt = null) =>
        await MemberCenterFixture.ReadAsync<LinkKeyResponse>(await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key",
            new LinkKeyRequest(tenant.TenantId, keyId, issuedAt), MemberCenterFixture.Json, Ct));

    private static string TokenOf(string url) => url[(url.IndexOf("token=", StringComparison.Ordinal) + 6)..];

    [Fact]
    public async Task The_recipients_page_inserts_no_token_rows_and_its_stateless_links_work()
    {
        var tenant = await mc.CreateTenantAsync();
        var emails = new[] { await ConfirmedAsync(tenant), await ConfirmedAsync(tenant) };
        using var se = await SendEngineAsync();
        var before = await TokenRowsAsync(tenant);
        var page = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct);
        Assert.Equal(before, await TokenRowsAsync(tenant));
        Assert.Equal(2, page!.Items.Count);
        var mint = await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId, Ct);
        var urls = page.Items.Select(r => mint(r.SubscriberId)).ToList();
        Assert.All(urls, u => Assert.StartsWith(mc.BaseUri + "newsletter/unsubscribe?token=u1.", u));

        using var http = mc.Http();
        // The preference centre opens with it too, and the page's form unsubscribes.
        using (var manage = await http.GetAsync("newsletter/manage?token=" + TokenOf(urls[0]), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, manage.StatusCode);
            Assert.Contains("lang", await manage.Content.ReadAsStringAsync(Ct));
        }
        using (var left = await http.PostAsync(urls[0], OneClick, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, left.StatusCode);
        }
        // JSON from a tenant site works with the same token.
        var json = await MemberCenterFixture.ReadAsync<UnsubscribeResponse>(await http.PostAsJsonAsync("newsletter/unsubscribe", new { token = TokenOf(urls[1]) }, Ct));
        Assert.Equal("unsubscribed", json.Status);
        Assert.Equal(before, await TokenRowsAsync(tenant));
    }

    [Fact]
    public async Task Stored_tokens_keep_working_on_every_page()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = await ConfirmedAsync(tenant);
        var token = await tenant.UnsubscribeTokenAsync(email); // the tenant API still issues stored tokens
        Assert.True(SubscriptionTokens.IsWellFormed(token));
        using var http = mc.Http();
        using (var page = await http.GetAsync("newsletter/unsubscribe?token=" + token, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        }
        using (var manage = await http.GetAsync("newsletter/manage?token=" + token, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, manage.StatusCode);
        }
        using (var left = await http.PostAsync("newsletter/unsubscribe?token=" + token, OneClick, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, left.StatusCode);
        }
        Assert.Equal("unsubscribed", (await NewsletterApiTests.GetPreferencesAsync(tenant, email)).Status);
    }

    [Fact]
    public async Task Rotation_keeps_old_links_verifying_and_the_old_key_can_be_derived_again()
    {
        var tenant = await mc.CreateTenantAsync();
        await ConfirmedAsync(tenant);
        using var se = await SendEngineAsync();
        var first = await LinkKeyAsync(se, tenant);
        var page = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct);
        var oldLink = (await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId, Ct))(page!.Items[0].SubscriberId);
        Assert.Contains($"u1.{first.KeyId}.", oldLink);

        var rotated = await Ring.RotateAsync(Ct);
        var second = await LinkKeyAsync(se, tenant);
        Assert.Equal(rotated.Id, second.KeyId);
        Assert.NotEqual(first.KeyId, second.KeyId);
        Assert.NotEqual(first.Key, second.Key);
        // The old key stopped signing but verifies until its last link expires.
        var old = await mc.WithDbAsync(db => db.LinkKeys.AsNoTracking().SingleAsync(k => k.Id == first.KeyId));
        Assert.True(old.SignsUntil <= DateTimeOffset.UtcNow);
        Assert.Equal(old.SignsUntil + TimeSpan.FromDays(60), old.RetireAt);
        var again = await LinkKeyAsync(se, tenant, first.KeyId, first.IssuedAt);
        Assert.Equal(first.Key, again.Key);
        Assert.Equal(first.IssuedAt, again.IssuedAt);
        using var http = mc.Http();
        using (var pageOfOldLink = await http.GetAsync(oldLink, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, pageOfOldLink.StatusCode);
        }

        // Automatic rotation: once the current key's signing period is over, the next refresh creates the next key.
        await mc.WithDbAsync(db => db.LinkKeys.Where(k => k.Id == second.KeyId).ExecuteUpdateAsync(u => u.SetProperty(k => k.SignsUntil, DateTimeOffset.UtcNow.AddSeconds(-1)), Ct));
        await Ring.RefreshAsync(Ct);
        var third = await LinkKeyAsync(se, tenant);
        Assert.NotEqual(second.KeyId, third.KeyId);
        var current = await mc.WithDbAsync(db => db.LinkKeys.AsNoTracking().SingleAsync(k => k.Id == third.KeyId));
        Assert.Equal(TimeSpan.FromDays(30), current.SignsUntil - current.CreatedAt);
    }

    [Fact]
    public async Task A_retired_key_is_deleted_its_links_fail_and_the_route_answers_410()
    {
        var tenant = await mc.CreateTenantAsync();
        await ConfirmedAsync(tenant);
        using var se = await SendEngineAsync();
        var key = await LinkKeyAsync(se, tenant);
        var page = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct);
        var link = (await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId, Ct))(page!.Items[0].SubscriberId);
        await Ring.RotateAsync(Ct);
        await mc.WithDbAsync(db => db.LinkKeys.Where(k => k.Id == key.KeyId).ExecuteUpdateAsync(u => u.SetProperty(k => k.RetireAt, DateTimeOffset.UtcNow.AddSeconds(-1)), Ct));
        await Ring.RefreshAsync(Ct);
        Assert.False(await mc.WithDbAsync(db => db.LinkKeys.AnyAsync(k => k.Id == key.KeyId, Ct)));

        using var gone = await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key", new LinkKeyRequest(tenant.TenantId, key.KeyId, key.IssuedAt), MemberCenterFixture.Json, Ct);
        Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
        Assert.Equal("application/problem+json", gone.Content.Headers.ContentType?.MediaType);
        using var http = mc.Http();
        using var refused = await http.PostAsync(link, OneClick, Ct);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
    }

    [Fact]
    public async Task Link_key_and_list_routes_check_input_and_tenant()
    {
        var tenant = await mc.CreateTenantAsync();
        var other = await mc.CreateTenantAsync();
        using var se = await SendEngineAsync();
        using (var ok = await se.GetAsync($"internal/lists/{tenant.ListId}?tenant_id={tenant.TenantId}", Ct))
        {
            var body = await MemberCenterFixture.ReadAsync<InternalListResponse>(ok);
            Assert.Equal((tenant.TenantId, tenant.ListId), (body.TenantId, body.ListId));
        }
        using (var foreign = await se.GetAsync($"internal/lists/{tenant.ListId}?tenant_id={other.TenantId}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
        using (var missing = await se.GetAsync($"internal/lists/{tenant.ListId}", Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        }
        using (var foreignKey = await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key", new LinkKeyRequest(other.TenantId), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreignKey.StatusCode);
        }
        var key = await LinkKeyAsync(se, tenant);
        using (var half = await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key", new LinkKeyRequest(tenant.TenantId, key.KeyId), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, half.StatusCode);
            Assert.Contains("issued_at", await half.Content.ReadAsStringAsync(Ct));
        }
        // A future issued_at would stretch the links' lifetime: refused.
        using (var future = await se.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key", new LinkKeyRequest(tenant.TenantId, key.KeyId, key.IssuedAt + 86_400), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, future.StatusCode);
        }
        // Tenant tokens never reach internal routes.
        using var site = tenant.Api();
        using (var refused = await site.PostAsJsonAsync($"internal/lists/{tenant.ListId}/link-key", new LinkKeyRequest(tenant.TenantId), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        Assert.Equal(32, Base64Url.DecodeFromChars(key.Key).Length);
        Assert.Equal(mc.BaseUri + "newsletter/unsubscribe?token=", key.UnsubscribeUrlPrefix);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(key.IssuedAt).AddDays(60), key.ExpiresAt);
    }

    [Fact]
    public async Task Stored_link_keys_are_encrypted_and_never_the_secret()
    {
        using var se = await SendEngineAsync();
        var tenant = await mc.CreateTenantAsync();
        var key = await LinkKeyAsync(se, tenant);
        var stored = await mc.WithDbAsync(db => db.LinkKeys.AsNoTracking().SingleAsync(k => k.Id == key.KeyId));
        // No 32-byte window of what is stored reproduces the derived key, so the root key is not stored as such.
        var derived = Base64Url.DecodeFromChars(key.Key);
        var info = System.Text.Encoding.ASCII.GetBytes($"unsubscribe-link|{tenant.TenantId}|{tenant.ListId}|{key.IssuedAt}");
        for (var i = 0; i + 32 <= stored.ProtectedSecret.Length; i++)
        {
            Assert.False(HMACSHA256.HashData(stored.ProtectedSecret.AsSpan(i, 32), info).AsSpan().SequenceEqual(derived), $"secret found at {i}");
        }
        Assert.Equal(2, stored.ProtectedSecret[0]); // Data Protection (no password configured in this fixture)
    }

    [Fact]
    public void With_a_password_keys_are_AES_GCM_bound_to_their_id_and_need_that_password()
    {
        var dp = new EphemeralDataProtectionProvider();
        var protector = new LinkKeyProtector(Microsoft.Extensions.Options.Options.Create(new NewsletterOptions { LinkKeyPassword = "a-link-key-password-0123" }), dp);
        var secret = RandomNumberGenerator.GetBytes(32);
        var stored = protector.Protect("abcdEFGH", secret);
        Assert.Equal(1, stored[0]);
        Assert.Equal(1 + 16 + 12 + 16 + 32, stored.Length);
        Assert.Equal(secret, protector.Unprotect("abcdEFGH", stored));
        Assert.ThrowsAny<CryptographicException>(() => protector.Unprotect("otherKid", stored));
        var wrong = new LinkKeyProtector(Microsoft.Extensions.Options.Options.Create(new NewsletterOptions { LinkKeyPassword = "another-password-0123" }), dp);
        Assert.ThrowsAny<CryptographicException>(() => wrong.Unprotect("abcdEFGH", stored));
        var none = new LinkKeyProtector(Microsoft.Extensions.Options.Options.Create(new NewsletterOptions()), dp);
        Assert.ThrowsAny<CryptographicException>(() => none.Unprotect("abcdEFGH", stored));
        // Without a password Data Protection encrypts; keys stored with it still load once a password is set.
        var dpStored = none.Protect("abcdEFGH", secret);
        Assert.Equal(2, dpStored[0]);
        Assert.Equal(secret, protector.Unprotect("abcdEFGH", dpStored));
    }

    [Fact]
    public void A_password_format_key_written_before_the_shared_protector_still_decrypts()
    {
        // Written by LinkKeyProtector's own AES-GCM code before the scheme moved to ServiceDefaults: pins the byte
        // layout, KDF, iterations and associated data, so rows already stored keep loading.
        var stored = Convert.FromBase64String("AeFWwXB3oplBi9fzlS+jcXZ8Gqt+/lMSq303jC/Rp+9w/HZCASL18yEP1y7f0gzkzuk77qNCUN15EipHSQIq6E7zxkEJzhynzjUKREA=");
        var protector = new LinkKeyProtector(Microsoft.Extensions.Options.Options.Create(new NewsletterOptions { LinkKeyPassword = "a-link-key-password-0123" }), new EphemeralDataProtectionProvider());
        Assert.Equal("0123456789abcdef0123456789ABCDEF"u8.ToArray(), protector.Unprotect("abcdEFGH", stored));
        Assert.ThrowsAny<CryptographicException>(() => protector.Unprotect("otherKid", stored));
    }
}
