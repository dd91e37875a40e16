namespace SendEngine.Tests;

/// <summary>Answers every DKIM key lookup with one TXT record (<c>v=DKIM1; k=rsa; p=…</c>), standing in for DNS when
/// MimeKit's <see cref="MimeKit.Cryptography.DkimVerifier"/> checks a signature.</summary>
internal sealed class FixedDkimKey(string txt) : MimeKit.Cryptography.DkimPublicKeyLocatorBase
{
    public override Org.BouncyCastle.Crypto.AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        GetPublicKey(txt);

    public override Task<Org.BouncyCastle.Crypto.AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        Task.FromResult(GetPublicKey(txt));
}
