using MemberCenter.Features.Subscriptions;

namespace MemberCenter.Tests;

public sealed class EmailAddressTests
{
    [Theory]
    [InlineData(" Ann@Example.COM ", "Ann@example.com", "ann@example.com")]
    [InlineData("ann+news@例え.テスト", "ann+news@xn--r8jz45g.xn--zckzah", "ann+news@xn--r8jz45g.xn--zckzah")]
    [InlineData("o'brien@sub.example.org.", "o'brien@sub.example.org", "o'brien@sub.example.org")]
    public void Normalises(string input, string value, string key)
    {
        Assert.True(EmailAddress.TryParse(input, out var email, out var error), error);
        Assert.Equal(value, email.Value);
        Assert.Equal(key, email.Key);
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain")]
    [InlineData("@example.com")]
    [InlineData("a@")]
    [InlineData("a@localhost")]
    [InlineData("a..b@example.com")]
    [InlineData(".a@example.com")]
    [InlineData("a b@example.com")]
    [InlineData("a@-bad-.com")]
    [InlineData("a@example.123")]
    [InlineData("a@exa mple.com")]
    public void Rejects(string input) => Assert.False(EmailAddress.TryParse(input, out _, out _));

    [Fact]
    public void Rejects_overlong_local_parts() => Assert.False(EmailAddress.TryParse(new string('a', 65) + "@example.com", out _, out _));
}
