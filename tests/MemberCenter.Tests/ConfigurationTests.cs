using Microsoft.IdentityModel.JsonWebTokens;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>Bad configuration stops the service at start with a message that names the key.</summary>
[LongRunning(101)]
public sealed class ConfigurationTests(PostgresServer postgres, MailDevServer mail)
{
    [Theory]
    [InlineData("Auth:Issuer", "not a url", "Auth__Issuer")]
    [InlineData("Auth:AccessTokenLifetime", "00:00:01", "AccessTokenLifetime")]
    [InlineData("OpenApi:ServerUrl", "/relative", "OpenApi__ServerUrl")]
    [InlineData("Privacy:AddressHashKey", "too-short", "AddressHashKey")]
    [InlineData("Newsletter:ConfirmationMailsPerDay", "0", "ConfirmationMailsPerDay")]
    public async Task A_bad_value_stops_the_start_naming_its_key(string key, string value, string named)
    {
        await using var mc = new MemberCenterFixture(postgres, mail);
        mc.Settings[key] = value;

        var error = await Record.ExceptionAsync(async () => await mc.InitializeAsync());

        Assert.NotNull(error);
        Assert.Contains(named, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_Production_it_refuses_to_start_with_unencrypted_signing_keys_unless_told_to()
    {
        await using (var refused = new MemberCenterFixture(postgres, mail))
        {
            refused.Settings["environment"] = "Production";
            var error = await Record.ExceptionAsync(async () => await refused.InitializeAsync());
            Assert.NotNull(error);
            Assert.Contains("Auth__SigningKeys__Password", error.ToString(), StringComparison.Ordinal);
            Assert.Contains("Auth__SigningKeys__AllowUnencrypted", error.ToString(), StringComparison.Ordinal);
        }

        // The explicit opt-out starts, and so does a configured password.
        foreach (var (key, value) in new[] { ("Auth:SigningKeys:AllowUnencrypted", "true"), ("Auth:SigningKeys:Password", "a-key-password-of-some-length") })
        {
            await using var mc = new MemberCenterFixture(postgres, mail);
            mc.Settings["environment"] = "Production";
            mc.Settings[key] = value;
            await mc.InitializeAsync();
            Assert.NotEmpty(await mc.AdminTokenAsync());
        }
    }

    [Fact]
    public async Task The_send_engine_audience_and_the_token_lifetime_follow_configuration()
    {
        await using var mc = new MemberCenterFixture(postgres, mail);
        mc.Settings["Auth:SendEngineAudience"] = "send_engine_api_eu";
        mc.Settings["Auth:AccessTokenLifetime"] = "00:05:00";
        await mc.InitializeAsync();
        var tenant = await mc.CreateTenantAsync();

        var jwt = new JsonWebToken(await mc.TokenAsync(tenant.SendClient.ClientId, tenant.SendClient.ClientSecret, Scopes.SendWrite));

        Assert.Equal(["send_engine_api_eu"], jwt.Audiences);
        Assert.InRange((jwt.ValidTo - jwt.IssuedAt).TotalSeconds, 299, 301);
        // Tenant API tokens keep their own audience.
        var tenantJwt = new JsonWebToken(tenant.TenantToken);
        Assert.Equal([Audiences.MemberCenterApi], tenantJwt.Audiences);
    }
}
