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
public sealed class SigningKeyRotationTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        // Long enough that a loaded CI machine still sees the new key before it signs.
        _mc.Settings["Auth:SigningKeys:PrePublish"] = "00:00:08";
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

        // Published at once, not yet used (pre-publication is 8 s in this fixture).
        Assert.Contains(next.KeyId, await JwksKidsAsync());
        Assert.Equal(oldKid, new JsonWebToken(await _mc.AdminTokenAsync()).Kid);

        // Once its NotBefore passes, the ring (refreshing every second) switches signing to it.
        var newKid = oldKid;
        for (var i = 0; i < 150 && newKid == oldKid; i++)
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
    public async Task With_a_password_new_keys_are_stored_protected_and_older_unprotected_keys_still_load()
    {
        await using var unprotected = new MemberCenterFixture(postgres, mail);
        await unprotected.InitializeAsync();
        var oldKid = new JsonWebToken(await unprotected.AdminTokenAsync()).Kid;

        await using var protectedMc = new MemberCenterFixture(postgres, mail);
        protectedMc.Settings["ConnectionStrings:MemberCenter"] = unprotected.ConnectionString;
        protectedMc.Settings["Auth:SigningKeys:Password"] = "a-key-password-of-some-length";
        await protectedMc.InitializeAsync();
        Assert.Equal(oldKid, new JsonWebToken(await protectedMc.AdminTokenAsync()).Kid);

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
