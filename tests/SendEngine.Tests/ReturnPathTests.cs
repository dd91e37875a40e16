using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Privacy;
using SendEngine.Composition;

namespace SendEngine.Tests;

public sealed class ReturnPathTests
{
    private static ReturnPath Create(string key = "0123456789abcdef0123456789abcdef-key") =>
        new(Options.Create(new PrivacyOptions { AddressHashKey = key }));

    [Fact]
    public void Recipient_and_task_addresses_read_back_whatever_the_case_or_domain()
    {
        var verp = Create();
        var recipient = verp.ForRecipient(1234567, "bounce.example.com");
        Assert.Matches("^b-r1234567-[a-z2-7]{10}@bounce.example.com$", recipient);
        Assert.True(verp.TryParse(recipient.ToUpperInvariant().Replace("BOUNCE.EXAMPLE.COM", "other.test"), out var r));
        Assert.Equal(new ReturnPathTarget(1234567, null), r);

        var taskId = Guid.NewGuid();
        var task = verp.ForTask(taskId, "bounce.example.com");
        Assert.True(verp.TryParse("<" + task + ">", out var t));
        Assert.Equal(new ReturnPathTarget(null, taskId), t);
        Assert.True(task.Split('@')[0].Length <= 64, "an RFC 5321 local part is at most 64 octets");
    }

    [Fact]
    public void A_forged_or_foreign_address_is_not_read()
    {
        var verp = Create();
        var genuine = verp.ForRecipient(42, "b.test");
        Assert.False(verp.TryParse(genuine.Replace("b-r42-", "b-r43-"), out _));
        Assert.False(Create("another-installation-key-0123456789ab").TryParse(genuine, out _));
        Assert.False(verp.TryParse("postmaster@b.test", out _));
        Assert.False(verp.TryParse("b-x42-aaaaaaaaaa@b.test", out _));
        Assert.False(verp.TryParse(null, out _));
    }
}
