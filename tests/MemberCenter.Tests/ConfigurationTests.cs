using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>Bad configuration stops the service at start with a message that names the key.</summary>
public sealed class ConfigurationTests(PostgresServer postgres, MailDevServer mail)
{
    [Theory]
    [InlineData("Auth:Issuer", "not a url", "Auth__Issuer")]
    [InlineData("Auth:AccessTokenLifetime", "00:00:01", "AccessTokenLifetime")]
    public async Task A_bad_value_stops_the_start_naming_its_key(string key, string value, string named)
    {
        await using var mc = new MemberCenterFixture(postgres, mail);
        mc.Settings[key] = value;

        var error = await Record.ExceptionAsync(async () => await mc.InitializeAsync());

        Assert.NotNull(error);
        Assert.Contains(named, error.ToString(), StringComparison.Ordinal);
    }
}
