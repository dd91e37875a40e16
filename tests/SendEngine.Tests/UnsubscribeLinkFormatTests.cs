using Newsletter.Contracts;
using SendEngine.Composition;
using McToken = global::MemberCenter.Features.Subscriptions.UnsubscribeLinkToken;

namespace SendEngine.Tests;

/// <summary>The test vector of docs/internal-api.md ("Unsubscribe link tokens"), for both sides.</summary>
public sealed class UnsubscribeLinkFormatTests
{
    private static readonly Guid Tenant = Guid.Parse("0193a1b2-0000-7000-8000-000000000001");
    private static readonly Guid List = Guid.Parse("0193a1b2-c3d4-e5f6-0718-293a4b5c6d7e");
    private static readonly Guid Subscriber = Guid.Parse("0193a1b2-c3d4-7a8b-9c0d-1e2f3a4b5c6d");
    private const string Expected = "u1.Xy3_ab-Q.1764590000.0193a1b2c3d4e5f60718293a4b5c6d7e.0193a1b2c3d47a8b9c0d1e2f3a4b5c6d.5h24o_cTjx8Sm9BDISy2rQ";

    [Fact]
    public void Member_Center_derives_the_documented_key_and_both_sides_mint_the_documented_token()
    {
        var root = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var linkKey = McToken.DeriveLinkKey(root, Tenant, List, 1764590000);
        Assert.Equal("aVdWk4vHahXfHFMmPlvlRy0d1srCTUcEBVnx3YAjY48", System.Buffers.Text.Base64Url.EncodeToString(linkKey));
        Assert.Equal(Expected, McToken.Format("Xy3_ab-Q", 1764590000, List, Subscriber, linkKey));

        var links = new UnsubscribeLinks(new LinkKeyResponse("Xy3_ab-Q", 1764590000, "aVdWk4vHahXfHFMmPlvlRy0d1srCTUcEBVnx3YAjY48",
            "https://mc.example/newsletter/unsubscribe?token=", List.ToString(), DateTimeOffset.FromUnixTimeSeconds(1764590000).AddDays(60)));
        Assert.Equal("https://mc.example/newsletter/unsubscribe?token=" + Expected, links.UrlFor(List, Subscriber));
        Assert.True(McToken.TryParse(Expected, out var parsed));
        Assert.Equal((List, Subscriber, 1764590000L, "Xy3_ab-Q"), (parsed.ListId, parsed.SubscriberId, parsed.IssuedAt, parsed.KeyId));
        Assert.Throws<ArgumentException>(() => links.UrlFor(Guid.NewGuid(), Subscriber));
    }

    [Fact]
    public void Minting_allocates_only_the_url()
    {
        var links = new UnsubscribeLinks(new LinkKeyResponse("Xy3_ab-Q", 1764590000, "aVdWk4vHahXfHFMmPlvlRy0d1srCTUcEBVnx3YAjY48",
            "https://mc.example/newsletter/unsubscribe?token=", List.ToString(), DateTimeOffset.UtcNow));
        links.UrlFor(List, Subscriber); // warm up
        var before = GC.GetAllocatedBytesForCurrentThread();
        var url = links.UrlFor(List, Subscriber);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated <= 24 + 2 * url.Length + 64, $"{allocated} bytes for a {url.Length}-character URL");
    }
}
