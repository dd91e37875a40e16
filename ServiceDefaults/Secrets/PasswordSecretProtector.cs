using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace Newsletter.ServiceDefaults.Secrets;

/// <summary>
/// Encrypts a secret at rest, bound to the id of the row that holds it. With a password: AES-256-GCM under a key
/// derived from the password (PBKDF2-SHA256, 100,000 iterations, a salt per secret), the ASCII id as associated data,
/// so a copy of the database alone gives nothing and every replica with the password reads every secret. Without one:
/// ASP.NET Core Data Protection under <paramref name="purpose"/> and the id, which ties the secrets to that key ring.
/// Stored as <c>[1][salt 16][nonce 12][tag 16][ciphertext]</c> or <c>[2][Data Protection payload]</c>; either reads
/// back whatever is configured now, as long as a password-format secret still has its password.
/// </summary>
/// <param name="purpose">The Data Protection purpose; changing it makes format-2 secrets unreadable.</param>
/// <param name="passwordSetting">The password's configuration key, named in the errors.</param>
/// <param name="noun">What the secret is ("link key"), named in the errors.</param>
public sealed class PasswordSecretProtector(IDataProtectionProvider dataProtection, string purpose, string passwordSetting, string noun)
{
    private const byte PasswordFormat = 1;
    private const byte DataProtectionFormat = 2;
    private const int Iterations = 100_000;
    private const int SaltSize = 16;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const int HeaderSize = SaltSize + NonceSize + TagSize;

    /// <param name="password">Null: Data Protection. Callers decide whether an empty setting counts as unset.</param>
    public byte[] Protect(string? password, string id, byte[] secret)
    {
        if (password is null)
        {
            return [DataProtectionFormat, .. Protector(id).Protect(secret)];
        }
        var salt = RandomNumberGenerator.GetBytes(SaltSize);
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var kek = DeriveKey(password, salt);
        var cipher = new byte[secret.Length];
        var tag = new byte[TagSize];
        try
        {
            using var aes = new AesGcm(kek, TagSize);
            aes.Encrypt(nonce, secret, cipher, tag, AssociatedData(id));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
        return [PasswordFormat, .. salt, .. nonce, .. tag, .. cipher];
    }

    /// <exception cref="CryptographicException">The secret cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(string? password, string id, byte[] stored)
    {
        if (stored.Length == 0)
        {
            throw new CryptographicException($"Empty {noun}.");
        }
        switch (stored[0])
        {
            case PasswordFormat:
                if (password is null)
                {
                    throw new CryptographicException($"The {noun} was stored with {passwordSetting}, which is not configured.");
                }
                var body = stored.AsSpan(1);
                if (body.Length < HeaderSize + 1)
                {
                    throw new CryptographicException($"Truncated {noun}.");
                }
                var kek = DeriveKey(password, body[..SaltSize]);
                var secret = new byte[body.Length - HeaderSize];
                try
                {
                    using var aes = new AesGcm(kek, TagSize);
                    aes.Decrypt(body.Slice(SaltSize, NonceSize), body[HeaderSize..], body.Slice(SaltSize + NonceSize, TagSize), secret, AssociatedData(id));
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(kek);
                }
                return secret;
            case DataProtectionFormat:
                return Protector(id).Unprotect(stored[1..]);
            default:
                throw new CryptographicException($"Unknown {noun} format.");
        }
    }

    // Pbkdf2(string, ...) encodes the password as UTF-8; spelled out so both directions visibly derive the same key.
    private static byte[] DeriveKey(string password, ReadOnlySpan<byte> salt) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, Iterations, HashAlgorithmName.SHA256, 32);

    private static byte[] AssociatedData(string id) => Encoding.ASCII.GetBytes(id);

    private IDataProtector Protector(string id) => dataProtection.CreateProtector(purpose, id);
}
