using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Secrets;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// Creates DKIM key pairs (RSA 2048) and encrypts the private keys at rest with <see cref="PasswordSecretProtector"/>,
/// as the webhook secrets are: with <c>SenderDomains:KeyPassword</c>, AES-256-GCM under a key derived from it, the key
/// id as associated data; without it, ASP.NET Core Data Protection.
/// </summary>
public sealed class DkimKeyProtector(IOptions<SenderDomainOptions> options, IDataProtectionProvider dataProtection)
{
    private readonly PasswordSecretProtector _protector = new(dataProtection, "SendEngine.DkimKeys.v1", "SenderDomains:KeyPassword", "DKIM private key");

    /// <summary>A new key pair: the PKCS#1 private key (DER) and the base64 SubjectPublicKeyInfo (the record's p=).</summary>
    public static (byte[] PrivateKey, string PublicKey) NewKeyPair()
    {
        using var rsa = RSA.Create(2048);
        return (rsa.ExportRSAPrivateKey(), Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo()));
    }

    public byte[] Protect(Guid keyId, byte[] privateKey) => _protector.Protect(Password, keyId.ToString("N"), privateKey);

    /// <exception cref="CryptographicException">The key cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(Guid keyId, byte[] stored) => _protector.Unprotect(Password, keyId.ToString("N"), stored);

    private string? Password => options.Value.KeyPassword is { Length: > 0 } password ? password : null;
}
