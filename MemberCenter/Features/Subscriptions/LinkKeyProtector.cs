using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Secrets;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// Encrypts link-key secrets at rest with <see cref="PasswordSecretProtector"/>, the key id as associated data: with
/// <c>Newsletter:LinkKeyPassword</c>, AES-256-GCM under a key derived from it, so a copy of the database alone gives
/// nothing and every replica with the password reads every key; without it, ASP.NET Core Data Protection (its key ring
/// in the profile directory by default), which ties the keys to that key ring.
/// </summary>
public sealed class LinkKeyProtector(IOptions<NewsletterOptions> options, IDataProtectionProvider dataProtection)
{
    private readonly PasswordSecretProtector _protector = new(dataProtection, "MemberCenter.LinkKeys.v1", "Newsletter:LinkKeyPassword", "link key");

    public byte[] Protect(string keyId, byte[] secret) => _protector.Protect(options.Value.LinkKeyPassword, keyId, secret);

    /// <exception cref="CryptographicException">The secret cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(string keyId, byte[] stored) => _protector.Unprotect(options.Value.LinkKeyPassword, keyId, stored);
}
