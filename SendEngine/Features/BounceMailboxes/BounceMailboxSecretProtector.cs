using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Secrets;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>
/// Encrypts tenant mailbox passwords at rest with <see cref="PasswordSecretProtector"/>, as the webhook secrets are:
/// with <c>BounceMailboxes:SecretPassword</c>, AES-256-GCM under a key derived from it, the mailbox id as associated
/// data; without it, ASP.NET Core Data Protection. The reader needs the password itself, so it cannot be a hash.
/// </summary>
public sealed class BounceMailboxSecretProtector(IOptions<BounceMailboxOptions> options, IDataProtectionProvider dataProtection)
{
    private readonly PasswordSecretProtector _protector = new(dataProtection, "SendEngine.BounceMailboxPasswords.v1", "BounceMailboxes:SecretPassword", "mailbox password");

    public byte[] Protect(Guid mailboxId, string password) =>
        _protector.Protect(Password, mailboxId.ToString("N"), System.Text.Encoding.UTF8.GetBytes(password));

    /// <exception cref="System.Security.Cryptography.CryptographicException">Not decryptable with this configuration.</exception>
    public string Unprotect(Guid mailboxId, byte[] stored) =>
        System.Text.Encoding.UTF8.GetString(_protector.Unprotect(Password, mailboxId.ToString("N"), stored));

    private string? Password => options.Value.SecretPassword is { Length: > 0 } password ? password : null;
}
