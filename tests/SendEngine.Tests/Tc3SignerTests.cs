using SendEngine.Features.Tencent;

namespace SendEngine.Tests;

public sealed class Tc3SignerTests
{
    /// <summary>Tencent Cloud "Signature v3" worked example (CVM DescribeInstances, 2019-02-25), every intermediate value.</summary>
    [Fact]
    public void Reproduces_tencents_published_signature_example()
    {
        const string payload = """{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}""";
        Assert.Equal("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064", Tc3Signer.Sha256Hex(payload));

        var s = Tc3Signer.Sign("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm", "cvm.tencentcloudapi.com",
            1551113065, payload);

        Assert.Equal("POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n"
                     + "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064", s.CanonicalRequest);
        Assert.Equal("2019-02-25/cvm/tc3_request", s.CredentialScope);
        Assert.Equal("TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031", s.StringToSign);
        Assert.Equal("72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168", s.Value);
        Assert.Equal("TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
                     + "SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168", s.Authorization);
    }

    [Fact]
    public void Date_in_the_scope_is_the_utc_date()
    {
        // 1551113065 is 2019-02-26 00:44:25 in UTC+8; the scope must still say 2019-02-25.
        Assert.StartsWith("2019-02-25/", Tc3Signer.Sign("id", "key", "ses", "ses.tencentcloudapi.com", 1551113065, "{}").CredentialScope);
    }
}
