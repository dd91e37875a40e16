using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using MimeKit.Cryptography;

namespace SendEngine.Composition;

/// <summary>
/// A DKIM key (rsa-sha256, relaxed/relaxed) that MimeKit signs with (<see cref="DkimSigner"/>, for messages built
/// through its model) and that also signs bulk messages written as bytes (<see cref="Transports.WireMessage"/>) with
/// .NET's RSA (OpenSSL) rather than MimeKit's managed BouncyCastle RSA.
/// </summary>
public sealed class RsaDkimSigner : DkimSigner
{
    private readonly string _pem;
    /// <summary>RSA objects are not documented as safe for concurrent use: one per signing at a time, reused.</summary>
    private readonly ConcurrentBag<RSA> _keys = [];

    public RsaDkimSigner(string pem, string domain, string selector)
        : base(new MemoryStream(Encoding.ASCII.GetBytes(pem)), domain, selector)
    {
        _pem = pem;
        HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        AgentOrUserIdentifier = "@" + domain;
    }

    /// <summary>RSASSA-PKCS1-v1_5 over SHA-256 of <paramref name="data"/>.</summary>
    public byte[] SignSha256(ReadOnlySpan<byte> data)
    {
        if (!_keys.TryTake(out var rsa))
        {
            rsa = RSA.Create();
            rsa.ImportFromPem(_pem);
        }
        try
        {
            return rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }
        finally
        {
            _keys.Add(rsa);
        }
    }
}
