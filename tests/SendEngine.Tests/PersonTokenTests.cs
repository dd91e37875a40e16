using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MemberCenter.Features.People;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;

namespace SendEngine.Tests;

/// <summary>
/// Send Engine accepts a person's token from the console's sign-in: audience array holding its own, client_id console,
/// the tenant and the role's scopes. The token comes from the real code flow: login form, /connect/authorize, PKCE.
/// </summary>
public sealed partial class PersonTokenTests(StackFixture stack)
{
    private const string Password = "correct horse battery staple";

    [Fact]
    public async Task A_person_token_from_the_code_flow_reads_and_is_limited_on_send_jobs()
    {
        var tenant = await stack.CreateTenantAsync();
        var viewer = await PersonAsync(tenant.TenantId, Roles.Viewer);
        var token = await SignInAsync(viewer);
        var jwt = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(token);
        Assert.Contains(Audiences.SendEngineApi, jwt.Audiences);
        Assert.Contains(Audiences.MemberCenterApi, jwt.Audiences);
        Assert.Equal("console", jwt.GetClaim("client_id").Value);

        using var se = stack.SendEngineClient(token);
        using var list = await se.GetAsync("api/send-jobs");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        // A viewer has send.read only: creating a job is refused by Send Engine itself.
        using var create = await se.PostAsync("api/send-jobs", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Forbidden, create.StatusCode);
    }

    private async Task<Person> PersonAsync(string tenantId, string role)
    {
        await using var scope = stack.MemberCenter.Services.CreateAsyncScope();
        var people = scope.ServiceProvider.GetRequiredService<PeopleService>();
        var (person, errors) = await people.CreatePersonAsync($"person-{Guid.NewGuid():N}@example.com", null, Password, false, emailConfirmed: true, CancellationToken.None);
        Assert.True(person is not null, JsonSerializer.Serialize(errors));
        await people.AddMemberAsync(Guid.Parse(tenantId), person, role, CancellationToken.None);
        return person;
    }

    private async Task<string> SignInAsync(Person person)
    {
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false })
        {
            BaseAddress = new Uri(stack.MemberCenterUrl + "/"),
        };
        var verifier = WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
        var challenge = WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        var redirectUri = StackFixture.ConsoleUrl + "/signin-oidc";
        var authorize = QueryHelpers.AddQueryString("/connect/authorize", new Dictionary<string, string?>
        {
            ["client_id"] = "console",
            ["response_type"] = "code",
            ["redirect_uri"] = redirectUri,
            ["scope"] = "openid",
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
            ["state"] = "s",
        });
        var page = await (await http.GetAsync(QueryHelpers.AddQueryString("/account/login", "ReturnUrl", authorize))).Content.ReadAsStringAsync();
        using var login = await http.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["Email"] = person.Email!,
            ["Password"] = Password,
            ["ReturnUrl"] = authorize,
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(Antiforgery().Match(page).Groups[1].Value),
        }));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        using var code = await http.GetAsync(login.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Redirect, code.StatusCode);
        var location = code.Headers.Location!;
        Assert.StartsWith(redirectUri, location.ToString(), StringComparison.Ordinal);
        using var tokens = await http.PostAsync("/oauth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = QueryHelpers.ParseQuery(location.Query)["code"].ToString(),
            ["redirect_uri"] = redirectUri,
            ["code_verifier"] = verifier,
            ["client_id"] = "console",
            ["client_secret"] = stack.ConsoleClientSecret,
        }));
        var body = await tokens.Content.ReadAsStringAsync();
        Assert.True(tokens.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex Antiforgery();
}
