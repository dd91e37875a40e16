using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>Its own Member Center: rotating keys must not disturb the other tests.</summary>
[LongRunning(173)]
public sealed class SigningKeyRotationTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        // Long enough that a loaded machine still sees the new key before it signs: 8 s was not (the rotate call alone
        // took longer with the test projects side by side).
        _mc.Settings["Auth:SigningKeys:PrePublish"] = "00:00:25";
        return _mc.InitializeAsync();
    }
    public ValueTask DisposeAsync() => ((IAsyncDisposable)_mc).DisposeAsync();

    [Fact]
    public async Task A_new_key_is_published_before_it_signs_and_the_old_one_stays_for_its_tokens()
    {
        var oldToken = await _mc.AdminTokenAsync();
        var oldKid = new JsonWebToken(oldToken).Kid;

        using var admin = _mc.Http(oldToken);
        using var rotate = await admin.PostAsync("admin/signing-keys/rotate", null);
        var next = await MemberCenterFixture.ReadAsync<SigningKeyResponse>(rotate);
        Assert.Equal("published", next.State);
        Assert.NotEqual(oldKid, next.KeyId);

        // Published at once, not yet used (pre-publication is 25 s in this fixture).
        Assert.Contains(next.KeyId, await JwksKidsAsync());
        Assert.Equal(oldKid, new JsonWebToken(await _mc.AdminTokenAsync()).Kid);

        // Once its NotBefore passes, the ring (refreshing every second) switches signing to it.
        var newKid = oldKid;
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (newKid == oldKid && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            newKid = new JsonWebToken(await _mc.AdminTokenAsync()).Kid;
        }
        Assert.Equal(next.KeyId, newKid);

        // Tokens signed by the old key still verify against the JWKS, and still authorise requests.
        var kids = await JwksKidsAsync();
        Assert.Contains(oldKid, kids);
        Assert.True((await ValidateAsync(oldToken)).IsValid);
        using var stillOk = await admin.GetAsync("admin/signing-keys");
        Assert.Equal(HttpStatusCode.OK, stillOk.StatusCode);
    }

    [Fact]
    public async Task A_revoked_key_leaves_the_JWKS_at_once_its_tokens_are_refused_and_a_new_key_signs()
    {
        var ct = TestContext.Current.CancellationToken;
        var leakedToken = await _mc.AdminTokenAsync();
        var leakedKid = new JsonWebToken(leakedToken).Kid;
        using var admin = _mc.Http(leakedToken);

        using (var revoke = await admin.PostAsync($"admin/signing-keys/{leakedKid}/revoke", null, ct))
        {
            var revoked = await MemberCenterFixture.ReadAsync<SigningKeyResponse>(revoke);
            Assert.Equal(leakedKid, revoked.KeyId);
            Assert.Equal("revoked", revoked.State);
        }

        // Gone from the JWKS at once, and Member Center itself no longer accepts tokens it signed.
        Assert.DoesNotContain(leakedKid, await JwksKidsAsync());
        using (var refused = await admin.GetAsync("admin/signing-keys", ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
        Assert.False((await ValidateAsync(leakedToken)).IsValid);

        // It was the signing key, so a new one signs at once (no pre-publication) and is published.
        var freshToken = await _mc.AdminTokenAsync();
        var freshKid = new JsonWebToken(freshToken).Kid;
        Assert.NotEqual(leakedKid, freshKid);
        Assert.Contains(freshKid, await JwksKidsAsync());
        using var fresh = _mc.Http(freshToken);
        var keys = await MemberCenterFixture.ReadAsync<List<SigningKeyResponse>>(await fresh.GetAsync("admin/signing-keys", ct));
        Assert.DoesNotContain(keys, k => k.KeyId == leakedKid);
        Assert.Contains(keys, k => k.KeyId == freshKid && k.State == "signing");

        // Revoking again answers the same; an unknown kid is a 404 problem.
        using (var again = await fresh.PostAsync($"admin/signing-keys/{leakedKid}/revoke", null, ct))
        {
            Assert.Equal("revoked", (await MemberCenterFixture.ReadAsync<SigningKeyResponse>(again)).State);
        }
        foreach (var unknownKid in new[] { "0123456789ABCDEF0123456789ABCDEF01234567", "NO-SUCH-KEY" })
        {
            using var unknown = await fresh.PostAsync($"admin/signing-keys/{unknownKid}/revoke", null, ct);
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
        }

        // The revocation is stored: a restarted server neither publishes nor signs with the key.
        await using var restarted = new MemberCenterFixture(postgres, mail);
        restarted.Settings["ConnectionStrings:MemberCenter"] = _mc.ConnectionString;
        await restarted.InitializeAsync();
        Assert.Equal(freshKid, new JsonWebToken(await restarted.AdminTokenAsync()).Kid);
        using var restartedHttp = restarted.Http();
        var jwks = new JsonWebKeySet(await restartedHttp.GetStringAsync(".well-known/jwks", ct));
        Assert.DoesNotContain(jwks.Keys, k => k.Kid == leakedKid);
    }

    [Fact]
    public async Task Keys_are_persisted_so_a_restarted_server_signs_with_the_same_key()
    {
        var kid = new JsonWebToken(await _mc.AdminTokenAsync()).Kid;
        await using var second = new MemberCenterFixture(postgres, mail);
        second.Settings["ConnectionStrings:MemberCenter"] = _mc.ConnectionString;
        await second.InitializeAsync();
        var token = await second.AdminTokenAsync();
        Assert.Equal(kid, new JsonWebToken(token).Kid);
    }

    [Fact]
    public async Task With_a_password_keys_stored_unprotected_are_encrypted_on_start_and_new_keys_are_stored_protected()
    {
        await using var unprotected = new MemberCenterFixture(postgres, mail);
        await unprotected.InitializeAsync();
        var oldKid = new JsonWebToken(await unprotected.AdminTokenAsync()).Kid;
        var before = await unprotected.WithDbAsync(db => db.SigningKeys.AsNoTracking().SingleAsync(k => k.Id == oldKid));
        using (X509CertificateLoader.LoadPkcs12(before.Certificate, null))
        {
            // Stored without protection while no password was configured.
        }

        await using var protectedMc = new MemberCenterFixture(postgres, mail);
        protectedMc.Settings["ConnectionStrings:MemberCenter"] = unprotected.ConnectionString;
        protectedMc.Settings["Auth:SigningKeys:Password"] = "a-key-password-of-some-length";
        await protectedMc.InitializeAsync();
        // The same key keeps signing, now stored encrypted: no private key in the table loads without the password.
        Assert.Equal(oldKid, new JsonWebToken(await protectedMc.AdminTokenAsync()).Kid);
        var migrated = await protectedMc.WithDbAsync(db => db.SigningKeys.AsNoTracking().SingleAsync(k => k.Id == oldKid));
        Assert.ThrowsAny<CryptographicException>(() => X509CertificateLoader.LoadPkcs12(migrated.Certificate, null));
        using (var reloaded = X509CertificateLoader.LoadPkcs12(migrated.Certificate, "a-key-password-of-some-length"))
        {
            Assert.Equal(oldKid, reloaded.Thumbprint);
            Assert.True(reloaded.HasPrivateKey);
        }

        var ring = protectedMc.Services.GetRequiredService<MemberCenter.Features.Auth.SigningKeyRing>();
        var first = await ring.RotateAsync(immediately: true, TestContext.Current.CancellationToken);
        // Rotated again at once (usually within the same second): it must still expire last, or OpenIddict might keep
        // signing with the previous key.
        var next = await ring.RotateAsync(immediately: true, TestContext.Current.CancellationToken);
        Assert.True(next.NotAfter > first.NotAfter, $"{next.NotAfter:O} <= {first.NotAfter:O}");
        var stored = await protectedMc.WithDbAsync(db => db.SigningKeys.AsNoTracking().SingleAsync(k => k.Id == next.Id));

        Assert.ThrowsAny<CryptographicException>(() => X509CertificateLoader.LoadPkcs12(stored.Certificate, null));
        using var loaded = X509CertificateLoader.LoadPkcs12(stored.Certificate, "a-key-password-of-some-length");
        Assert.True(loaded.HasPrivateKey);
        // The protected key signs (the ring re-reads the table every second).
        var token = await protectedMc.AdminTokenAsync();
        for (var i = 0; i < 100 && new JsonWebToken(token).Kid != next.Id; i++)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
            token = await protectedMc.AdminTokenAsync();
        }
        Assert.Equal(next.Id, new JsonWebToken(token).Kid);
        using var admin = protectedMc.Http(token);
        using var ok = await admin.GetAsync("admin/signing-keys", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    private async Task<List<string>> JwksKidsAsync()
    {
        using var http = _mc.Http();
        var jwks = new JsonWebKeySet(await http.GetStringAsync(".well-known/jwks"));
        return jwks.Keys.Select(k => k.Kid).ToList();
    }

    private async Task<TokenValidationResult> ValidateAsync(string token)
    {
        using var http = _mc.Http();
        var jwks = new JsonWebKeySet(await http.GetStringAsync(".well-known/jwks"));
        return await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = _mc.Issuer,
            ValidAudience = Audiences.MemberCenterAdmin,
            IssuerSigningKeys = jwks.GetSigningKeys(),
        });
    }

}
