using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MemberCenter.Features.People;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;

namespace MemberCenter.Tests;

/// <summary>
/// What the console does, done by hand over HTTP: a cookie jar that follows no redirects, the login form with its
/// antiforgery token, /connect/authorize with PKCE, and the code exchanged at /oauth/token.
/// </summary>
public sealed partial class PersonClient : IDisposable
{
    public const string Password = "correct horse battery staple";
    public static readonly string RedirectUri = MemberCenterFixture.ConsoleUrl + "/signin-oidc";

    private readonly MemberCenterFixture _mc;

    public PersonClient(MemberCenterFixture mc)
    {
        _mc = mc;
        Cookies = new CookieContainer();
        Http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false }) { BaseAddress = mc.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    public HttpClient Http { get; }
    public CookieContainer Cookies { get; }

    /// <summary>A confirmed account, a member of each tenant given (with its role).</summary>
    public static async Task<Person> CreatePersonAsync(MemberCenterFixture mc, string? email = null, bool platformOperator = false, params (string TenantId, string Role)[] memberships)
    {
        await using var scope = mc.Services.CreateAsyncScope();
        var people = scope.ServiceProvider.GetRequiredService<PeopleService>();
        var (person, errors) = await people.CreatePersonAsync(email ?? $"person-{Guid.NewGuid():N}@example.com", "Pat Person", Password, platformOperator, emailConfirmed: true, CancellationToken.None);
        Assert.True(person is not null, JsonSerializer.Serialize(errors));
        foreach (var (tenantId, role) in memberships)
        {
            await people.AddMemberAsync(Guid.Parse(tenantId), person, role, CancellationToken.None);
        }
        return person;
    }

    public static (string Verifier, string Challenge) Pkce()
    {
        var verifier = WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
        return (verifier, WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
    }

    public static string AuthorizeUrl(string? challenge, string? tenantId = null, string? prompt = null, string scope = "openid offline_access", string method = "S256")
    {
        var query = new Dictionary<string, string?>
        {
            ["client_id"] = MemberCenterFixture.ConsoleClientId,
            ["response_type"] = "code",
            ["redirect_uri"] = RedirectUri,
            ["scope"] = scope,
            ["state"] = "state-" + Guid.NewGuid().ToString("N"),
        };
        if (challenge is not null)
        {
            query["code_challenge"] = challenge;
            query["code_challenge_method"] = method;
        }
        if (tenantId is not null)
        {
            query["tenant_id"] = tenantId;
        }
        if (prompt is not null)
        {
            query["prompt"] = prompt;
        }
        return QueryHelpers.AddQueryString("/connect/authorize", query);
    }

    /// <summary>Posts the login form (after reading its antiforgery token); answers the POST's response.</summary>
    public async Task<HttpResponseMessage> PostLoginAsync(string email, string password, string? returnUrl = null)
    {
        var page = await Http.GetAsync(returnUrl is null ? "/account/login" : QueryHelpers.AddQueryString("/account/login", "ReturnUrl", returnUrl));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        var form = new Dictionary<string, string>
        {
            ["Email"] = email,
            ["Password"] = password,
            ["ReturnUrl"] = returnUrl ?? "",
            ["__RequestVerificationToken"] = AntiforgeryToken(html),
        };
        return await Http.PostAsync("/account/login", new FormUrlEncodedContent(form));
    }

    public static string AntiforgeryToken(string html)
    {
        var match = AntiforgeryInput().Match(html);
        Assert.True(match.Success, "no antiforgery token in the page");
        return WebUtility.HtmlDecode(match.Groups[1].Value);
    }

    /// <summary>Follows the redirects of an authorize request until one leaves Member Center; answers that Location.</summary>
    public async Task<Uri> FollowAsync(string url)
    {
        for (var i = 0; i < 10; i++)
        {
            using var response = await Http.GetAsync(url);
            Assert.True(response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found, $"{(int)response.StatusCode} at {url}: {await response.Content.ReadAsStringAsync()}");
            var location = new Uri(_mc.BaseUri, response.Headers.Location!);
            if (!location.ToString().StartsWith(_mc.BaseUri.ToString(), StringComparison.Ordinal))
            {
                return location;
            }
            url = location.PathAndQuery;
        }
        throw new InvalidOperationException("Too many redirects.");
    }

    /// <summary>Signs in through the login page and returns the code of an authorize request.</summary>
    public async Task<string> SignInForCodeAsync(string email, string challenge, string? tenantId = null)
    {
        var authorize = AuthorizeUrl(challenge, tenantId);
        using (var first = await Http.GetAsync(authorize))
        {
            Assert.Equal(HttpStatusCode.Redirect, first.StatusCode);
            Assert.Equal("/account/login", first.Headers.Location!.IsAbsoluteUri ? first.Headers.Location.AbsolutePath : first.Headers.Location.OriginalString.Split('?')[0]);
        }
        using var login = await PostLoginAsync(email, Password, authorize);
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return CodeOf(await FollowAsync(login.Headers.Location!.OriginalString));
    }

    public static string CodeOf(Uri redirect)
    {
        Assert.StartsWith(RedirectUri, redirect.ToString(), StringComparison.Ordinal);
        var query = QueryHelpers.ParseQuery(redirect.Query);
        Assert.True(query.ContainsKey("code"), "no code in " + redirect);
        return query["code"].ToString();
    }

    public async Task<HttpResponseMessage> RedeemAsync(string code, string? verifier)
    {
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = RedirectUri,
            ["client_id"] = MemberCenterFixture.ConsoleClientId,
            ["client_secret"] = MemberCenterFixture.ConsoleClientSecret,
        };
        if (verifier is not null)
        {
            form["code_verifier"] = verifier;
        }
        return await Http.PostAsync("/oauth/token", new FormUrlEncodedContent(form));
    }

    /// <summary>The whole flow: sign in, authorize, redeem; answers the token response's JSON.</summary>
    public async Task<JsonElement> SignInAsync(string email, string? tenantId = null)
    {
        var (verifier, challenge) = Pkce();
        var code = await SignInForCodeAsync(email, challenge, tenantId);
        return await ReadTokenAsync(await RedeemAsync(code, verifier));
    }

    public static async Task<JsonElement> ReadTokenAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public static JsonWebToken AccessToken(JsonElement tokenResponse) => new(tokenResponse.GetProperty("access_token").GetString()!);

    public void Dispose() => Http.Dispose();

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryInput();
}
