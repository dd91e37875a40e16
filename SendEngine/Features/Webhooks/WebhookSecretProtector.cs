using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// Creates endpoint secrets (<c>whsec_</c> + base64 of 32 random bytes) and encrypts them at rest, in the scheme
/// Member Center uses for its link keys: with <c>Webhooks:SecretPassword</c>, AES-256-GCM under a key derived from the
/// password (PBKDF2-SHA256, 100,000 iterations, a salt per secret), the endpoint id as associated data; without it,
/// ASP.NET Core Data Protection. Stored as <c>[1][salt 16][nonce 12][tag 16][ciphertext]</c> or <c>[2][payload]</c>.
/// The signature needs the secret itself, so it cannot be a one-way hash. Decrypted secrets are cached briefly: the
/// key derivation is deliberately slow and the dispatcher signs every message.
/// </summary>
public sealed class WebhookSecretProtector(IOptions<EventWebhookOptions> options, IDataProtectionProvider dataProtection, IMemoryCache cache)
{
    public const string Prefix = "whsec_";
    private const byte PasswordFormat = 1;
    private const byte DataProtectionFormat = 2;
    private const int Iterations = 100_000;

    public static byte[] NewSecret() => RandomNumberGenerator.GetBytes(32);

    public static string Display(byte[] secret) => Prefix + Convert.ToBase64String(secret);

    public byte[] Protect(Guid endpointId, byte[] secret)
    {
        if (options.Value.SecretPassword is { Length: > 0 } password)
        {
            var salt = RandomNumberGenerator.GetBytes(16);
            var nonce = RandomNumberGenerator.GetBytes(12);
            var kek = Rfc2898DeriveBytes.Pbkdf2(password, salt, Iterations, HashAlgorithmName.SHA256, 32);
            var cipher = new byte[secret.Length];
            var tag = new byte[16];
            using (var aes = new AesGcm(kek, 16))
            {
                aes.Encrypt(nonce, secret, cipher, tag, AssociatedData(endpointId));
            }
            CryptographicOperations.ZeroMemory(kek);
            return [PasswordFormat, .. salt, .. nonce, .. tag, .. cipher];
        }
        return [DataProtectionFormat, .. Protector(endpointId).Protect(secret)];
    }

    /// <exception cref="CryptographicException">The secret cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(Guid endpointId, byte[] stored)
    {
        var key = (endpointId, Convert.ToBase64String(SHA256.HashData(stored)));
        return cache.GetOrCreate(key, entry =>
        {
            entry.AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10);
            entry.Size = 1;
            return Decrypt(endpointId, stored);
        })!;
    }

    private byte[] Decrypt(Guid endpointId, byte[] stored)
    {
        if (stored.Length == 0)
        {
            throw new CryptographicException("Empty webhook secret.");
        }
        switch (stored[0])
        {
            case PasswordFormat:
                if (options.Value.SecretPassword is not { Length: > 0 } password)
                {
                    throw new CryptographicException("The webhook secret was stored with Webhooks:SecretPassword, which is not configured.");
                }
                var body = stored.AsSpan(1);
                if (body.Length < 16 + 12 + 16 + 1)
                {
                    throw new CryptographicException("Truncated webhook secret.");
                }
                var kek = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), body[..16], Iterations, HashAlgorithmName.SHA256, 32);
                var secret = new byte[body.Length - 44];
                using (var aes = new AesGcm(kek, 16))
                {
                    aes.Decrypt(body.Slice(16, 12), body[44..], body.Slice(28, 16), secret, AssociatedData(endpointId));
                }
                CryptographicOperations.ZeroMemory(kek);
                return secret;
            case DataProtectionFormat:
                return Protector(endpointId).Unprotect(stored[1..]);
            default:
                throw new CryptographicException("Unknown webhook secret format.");
        }
    }

    private static byte[] AssociatedData(Guid endpointId) => Encoding.ASCII.GetBytes(endpointId.ToString("N"));

    private IDataProtector Protector(Guid endpointId) => dataProtection.CreateProtector("SendEngine.WebhookSecrets.v1", endpointId.ToString("N"));
}
