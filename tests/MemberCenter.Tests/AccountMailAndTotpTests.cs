using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using MemberCenter.Features.People;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Password reset by mail through the outbox, and the TOTP second factor, through the real pages.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed partial class AccountMailAndTotpTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task The_password_reset_mail_arrives_and_its_link_works_once()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Viewer));
        using var client = new PersonClient(mc);
        var page = await (await client.Http.GetAsync("/account/forgot-password")).Content.ReadAsStringAsync();
        using var sent = await client.Http.PostAsync("/account/forgot-password", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Email"] = person.Email!,
            ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(page),
        }));
        Assert.Contains("is on its way", await sent.Content.ReadAsStringAsync());
        // Through the outbox: a row of its kind, no token in it.
        Assert.True(await mc.WithDbAsync(db => Task.FromResult(db.OutboxMessages.Any(m => m.UserId == person.Id && m.Kind == "password_reset"))));

        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(person.Email!) && m.Subject.Contains("Reset"), TimeSpan.FromSeconds(30));
        var link = new Uri(WebUtility.HtmlDecode(ResetLink().Match(mail.Html!).Groups[1].Value));
        var q = QueryHelpers.ParseQuery(link.Query);
        const string newPassword = "a brand new passphrase 42";

        async Task<HttpResponseMessage> ResetAsync(string password)
        {
            var form = await (await client.Http.GetAsync(link.PathAndQuery)).Content.ReadAsStringAsync();
            return await client.Http.PostAsync("/account/reset-password", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["user_id"] = q["user_id"].ToString(),
                ["Code"] = q["code"].ToString(),
                ["Password"] = password,
                ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(form),
            }));
        }

        using (var done = await ResetAsync(newPassword))
        {
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
            Assert.Contains("Your password is changed", await done.Content.ReadAsStringAsync());
        }
        using (var second = await ResetAsync("someone else's passphrase"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, second.StatusCode);
            Assert.Contains("not valid any more", await second.Content.ReadAsStringAsync());
        }
        using (var old = await client.PostLoginAsync(person.Email!, PersonClient.Password))
        {
            Assert.Equal(HttpStatusCode.BadRequest, old.StatusCode);
        }
        using var signedIn = await client.PostLoginAsync(person.Email!, newPassword);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
    }

    [Fact]
    public async Task With_totp_on_the_code_flow_asks_for_the_code_and_a_recovery_code_works_once()
    {
        var tenant = await mc.CreateTenantAsync();
        var person = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Roles.Owner));
        using var client = new PersonClient(mc);
        using (var login = await client.PostLoginAsync(person.Email!, PersonClient.Password))
        {
            Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        }

        // Turn it on from the manage page: the key shown there, a code computed from it.
        var manage = await (await client.Http.GetAsync("/account/two-factor")).Content.ReadAsStringAsync();
        var key = SharedKey().Match(manage).Groups[1].Value.Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant();
        Assert.Contains("otpauth://totp/", WebUtility.HtmlDecode(manage));
        using var enabled = await client.Http.PostAsync("/account/two-factor?handler=Enable", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Code"] = Totp(key, DateTimeOffset.UtcNow),
            ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(manage),
        }));
        var enabledHtml = await enabled.Content.ReadAsStringAsync();
        Assert.Contains("Two-factor authentication is on", enabledHtml);
        var recoveryCodes = RecoveryCode().Matches(enabledHtml).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(10, recoveryCodes.Count);

        // A new session: password, then the code, then the authorization code.
        using var fresh = new PersonClient(mc);
        var (verifier, challenge) = PersonClient.Pkce();
        var authorize = PersonClient.AuthorizeUrl(challenge);
        using var password = await fresh.PostLoginAsync(person.Email!, PersonClient.Password, authorize);
        Assert.Equal(HttpStatusCode.Redirect, password.StatusCode);
        Assert.StartsWith("/account/login-2fa", password.Headers.Location!.OriginalString, StringComparison.Ordinal);
        var twoFactorPage = await (await fresh.Http.GetAsync(password.Headers.Location.OriginalString)).Content.ReadAsStringAsync();
        using (var wrong = await fresh.Http.PostAsync("/account/login-2fa", TwoFactorForm("000000", authorize, twoFactorPage)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        }
        using var right = await fresh.Http.PostAsync("/account/login-2fa", TwoFactorForm(Totp(key, DateTimeOffset.UtcNow), authorize, twoFactorPage));
        Assert.Equal(HttpStatusCode.Redirect, right.StatusCode);
        var code = PersonClient.CodeOf(await fresh.FollowAsync(right.Headers.Location!.OriginalString));
        var jwt = PersonClient.AccessToken(await PersonClient.ReadTokenAsync(await fresh.RedeemAsync(code, verifier)));
        Assert.Equal(person.Id.ToString(), jwt.Subject);

        // A recovery code instead of the authenticator, once.
        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var other = new PersonClient(mc);
            using var pw = await other.PostLoginAsync(person.Email!, PersonClient.Password);
            var recoveryPage = await (await other.Http.GetAsync("/account/login-recovery")).Content.ReadAsStringAsync();
            using var recovered = await other.Http.PostAsync("/account/login-recovery", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["Code"] = recoveryCodes[0],
                ["ReturnUrl"] = "",
                ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(recoveryPage),
            }));
            Assert.Equal(attempt == 0 ? HttpStatusCode.Redirect : HttpStatusCode.BadRequest, recovered.StatusCode);
        }
        await using var scope = mc.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<Person>>();
        Assert.Equal(9, await users.CountRecoveryCodesAsync((await users.FindByIdAsync(person.Id.ToString()))!));
    }

    private static FormUrlEncodedContent TwoFactorForm(string code, string returnUrl, string page) => new(new Dictionary<string, string>
    {
        ["Code"] = code,
        ["ReturnUrl"] = returnUrl,
        ["__RequestVerificationToken"] = PersonClient.AntiforgeryToken(page),
    });

    /// <summary>RFC 6238 with the defaults authenticator apps use (SHA-1, 30 s, 6 digits), from the base32 key.</summary>
    internal static string Totp(string base32Key, DateTimeOffset at)
    {
        var key = Base32(base32Key);
        var counter = BitConverter.GetBytes(at.ToUnixTimeSeconds() / 30);
        if (BitConverter.IsLittleEndian)
        {
            Array.Reverse(counter);
        }
        var hash = HMACSHA1.HashData(key, counter);
        var offset = hash[^1] & 0x0f;
        var binary = ((hash[offset] & 0x7f) << 24) | (hash[offset + 1] << 16) | (hash[offset + 2] << 8) | hash[offset + 3];
        return (binary % 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static byte[] Base32(string input)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        var bytes = new List<byte>();
        int buffer = 0, bits = 0;
        foreach (var c in input.TrimEnd('='))
        {
            buffer = (buffer << 5) | alphabet.IndexOf(c, StringComparison.Ordinal);
            bits += 5;
            if (bits >= 8)
            {
                bytes.Add((byte)(buffer >> (bits - 8)));
                bits -= 8;
            }
        }
        return [.. bytes];
    }

    [GeneratedRegex("href=\"([^\"]+)\" id=\"reset-link\"")]
    private static partial Regex ResetLink();

    [GeneratedRegex("<code id=\"shared-key\">([^<]+)</code>")]
    private static partial Regex SharedKey();

    [GeneratedRegex("<li class=\"mono\">([^<]+)</li>")]
    private static partial Regex RecoveryCode();
}
