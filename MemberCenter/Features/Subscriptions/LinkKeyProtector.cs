using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// Encrypts link-key secrets at rest. With <c>Newsletter:LinkKeyPassword</c>: AES-256-GCM under a key derived from the
/// password (PBKDF2-SHA256, 100,000 iterations, a salt per key), the key id as associated data, so a copy of the
/// database alone gives nothing and every replica with the password reads every key. Without it: ASP.NET Core Data
/// Protection (its key ring in the profile directory by default), which ties the keys to that key ring.
/// Stored as <c>[1][salt 16][nonce 12][tag 16][ciphertext]</c> or <c>[2][Data Protection payload]</c>.
/// </summary>
public sealed class LinkKeyProtector(IOptions<NewsletterOptions> options, IDataProtectionProvider dataProtection)
{
    private const byte PasswordFormat = 1;
    private const byte DataProtectionFormat = 2;
    private const int Iterations = 100_000;

    public byte[] Protect(string keyId, byte[] secret)
    {
        if (options.Value.LinkKeyPassword is { } password)
        {
            var salt = RandomNumberGenerator.GetBytes(16);
            var nonce = RandomNumberGenerator.GetBytes(12);
            var kek = Rfc2898DeriveBytes.Pbkdf2(password, salt, Iterations, HashAlgorithmName.SHA256, 32);
            var cipher = new byte[secret.Length];
            var tag = new byte[16];
            using (var aes = new AesGcm(kek, 16))
            {
                aes.Encrypt(nonce, secret, cipher, tag, Encoding.ASCII.GetBytes(keyId));
            }
            CryptographicOperations.ZeroMemory(kek);
            return [PasswordFormat, .. salt, .. nonce, .. tag, .. cipher];
        }
        return [DataProtectionFormat, .. Protector(keyId).Protect(secret)];
    }

    /// <exception cref="CryptographicException">The secret cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(string keyId, byte[] stored)
    {
        if (stored.Length == 0)
        {
            throw new CryptographicException("Empty link key.");
        }
        switch (stored[0])
        {
            case PasswordFormat:
                if (options.Value.LinkKeyPassword is not { } password)
                {
                    throw new CryptographicException("The link key was stored with Newsletter:LinkKeyPassword, which is not configured.");
                }
                var body = stored.AsSpan(1);
                if (body.Length < 16 + 12 + 16 + 1)
                {
                    throw new CryptographicException("Truncated link key.");
                }
                var kek = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), body[..16], Iterations, HashAlgorithmName.SHA256, 32);
                var secret = new byte[body.Length - 44];
                using (var aes = new AesGcm(kek, 16))
                {
                    aes.Decrypt(body.Slice(16, 12), body[44..], body.Slice(28, 16), secret, Encoding.ASCII.GetBytes(keyId));
                }
                CryptographicOperations.ZeroMemory(kek);
                return secret;
            case DataProtectionFormat:
                return Protector(keyId).Unprotect(stored[1..]);
            default:
                throw new CryptographicException("Unknown link key format.");
        }
    }

    private IDataProtector Protector(string keyId) => dataProtection.CreateProtector("MemberCenter.LinkKeys.v1", keyId);
}
