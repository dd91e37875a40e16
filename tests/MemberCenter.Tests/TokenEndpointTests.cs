using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class TokenEndpointTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task Discovery_names_the_token_endpoint_and_jwks()
    {
        using var http = mc.Http();
        var doc = JsonDocument.Parse(await http.GetStringAsync(".well-known/openid-configuration")).RootElement;
        Assert.Equal(mc.Issuer, doc.GetProperty("issuer").GetString());
        Assert.Equal(new Uri(mc.BaseUri, "oauth/token").ToString(), doc.GetProperty("token_endpoint").GetString());
        Assert.Equal(new Uri(mc.BaseUri, ".well-known/jwks").ToString(), doc.GetProperty("jwks_uri").GetString());
        Assert.Contains("client_credentials", doc.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Send_api_token_is_a_JWS_verifiable_with_the_JWKS_alone_and_carries_the_contract_claims()
    {
        var tenant = await mc.CreateTenantAsync();
        var token = await mc.TokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, Scopes.SendWrite);

        var result = await ValidateWithJwksAsync(token, Audiences.SendEngineApi);
        Assert.True(result.IsValid, result.Exception?.ToString());
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("RS256", jwt.Alg);
        Assert.Equal("at+jwt", jwt.Typ);
        Assert.Equal(mc.Issuer, jwt.Issuer);
        Assert.Equal([Audiences.SendEngineApi], jwt.Audiences);
        Assert.Equal(tenant.SendClient.ClientId, jwt.Subject);
        Assert.Equal(tenant.SendClient.ClientId, jwt.GetClaim("client_id").Value);
        Assert.Equal(tenant.TenantId, jwt.GetClaim("tenant_id").Value);
        Assert.Equal(Scopes.SendWrite, jwt.GetClaim("scope").Value);
        Assert.False(string.IsNullOrEmpty(jwt.Id));
        Assert.InRange((jwt.ValidTo - jwt.IssuedAt).TotalMinutes, 59, 61);
    }

    [Fact]
    public async Task No_scope_parameter_grants_every_scope_of_the_usage_and_tenant_api_gets_member_center_audience()
    {
        var tenant = await mc.CreateTenantAsync();
        var jwt = new JsonWebToken(await mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret));
        Assert.Equal([Audiences.MemberCenterApi], jwt.Audiences);
        Assert.Equal(
            new[] { Scopes.ListsRead, Scopes.ListsWrite, Scopes.SubscriptionsRead, Scopes.SubscriptionsWrite, Scopes.ApiKeysRead, Scopes.ApiKeysWrite, Scopes.ContentRead, Scopes.LogsRead, Scopes.SettingsWrite }.Order(),
            jwt.GetClaim("scope").Value.Split(' ').Order());
    }

    [Fact]
    public async Task Client_secret_basic_is_accepted()
    {
        var tenant = await mc.CreateTenantAsync();
        using var http = mc.Http();
        using var request = new HttpRequestMessage(HttpMethod.Post, "oauth/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = Scopes.SendRead }),
        };
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(tenant.SendClient.ClientId)}:{Uri.EscapeDataString(tenant.SendClient.ClientSecret)}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Errors_follow_RFC_6749()
    {
        var tenant = await mc.CreateTenantAsync();
        await AssertOAuthError(await mc.RequestTokenAsync(tenant.SendClient.ClientId, "wrong-secret"), "invalid_client");
        await AssertOAuthError(await mc.RequestTokenAsync("no-such-client", "whatever"), "invalid_client");
        await AssertOAuthError(await mc.RequestTokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, Scopes.SubscriptionsWrite), "invalid_scope");
        await AssertOAuthError(await mc.RequestTokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, "made:up"), "invalid_scope");
        await AssertOAuthError(await mc.RequestTokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, Scopes.InternalRecipientsRead), "invalid_scope");
        await AssertOAuthError(await mc.RequestTokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, grantType: "password"), "unsupported_grant_type");
    }

    [Fact]
    public async Task Platform_clients_have_no_tenant_and_internal_audience()
    {
        var jwt = new JsonWebToken(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));
        Assert.Equal([Audiences.MemberCenterInternal], jwt.Audiences);
        Assert.False(jwt.TryGetClaim("tenant_id", out _));
        Assert.Equal(new[] { Scopes.InternalRecipientsRead, Scopes.InternalSuppressionsWrite, Scopes.InternalApiKeysVerify }.Order(),
            jwt.GetClaim("scope").Value.Split(' ').Order());
    }

    [Fact]
    public async Task Platform_admin_tokens_are_for_Member_Centers_admin_API_and_Send_Engine()
    {
        var jwt = new JsonWebToken(await mc.AdminTokenAsync());
        Assert.Equal([Audiences.MemberCenterAdmin, Audiences.SendEngineApi], jwt.Audiences);
        Assert.False(jwt.TryGetClaim("tenant_id", out _));
    }

    [Fact]
    public async Task A_form_too_large_to_read_is_a_400_not_a_500()
    {
        using var http = mc.Http();
        var fields = Enumerable.Range(0, 2000).Select(i => new KeyValuePair<string, string>($"f{i}", "x"))
            .Append(new("grant_type", "client_credentials")).Append(new("client_id", "someone"));
        using var response = await http.PostAsync("oauth/token", new FormUrlEncodedContent(fields), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    internal static async Task AssertOAuthError(HttpResponseMessage response, string error)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized, $"{(int)response.StatusCode}: {body}");
            Assert.Equal(error, JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
        }
    }

    /// <summary>What a tenant or Send Engine does: fetch the JWKS and verify with a standard JOSE library, nothing else.</summary>
    internal async Task<TokenValidationResult> ValidateWithJwksAsync(string token, string audience)
    {
        using var http = mc.Http();
        var jwks = new JsonWebKeySet(await http.GetStringAsync(".well-known/jwks"));
        return await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = mc.Issuer,
            ValidAudience = audience,
            IssuerSigningKeys = jwks.GetSigningKeys(),
            ValidTypes = ["at+jwt"],
        });
    }
}
