using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Secrets;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// Creates endpoint secrets (<c>whsec_</c> + base64 of 32 random bytes) and encrypts them at rest with
/// <see cref="PasswordSecretProtector"/>, as Member Center does its link keys: with <c>Webhooks:SecretPassword</c>,
/// AES-256-GCM under a key derived from it, the endpoint id as associated data; without it, ASP.NET Core Data Protection.
/// The signature needs the secret itself, so it cannot be a one-way hash. Decrypted secrets are cached briefly: the
/// key derivation is deliberately slow and the dispatcher signs every message.
/// </summary>
public sealed class WebhookSecretProtector(IOptions<EventWebhookOptions> options, IDataProtectionProvider dataProtection, IMemoryCache cache)
{
    public const string Prefix = "whsec_";
    private readonly PasswordSecretProtector _protector = new(dataProtection, "SendEngine.WebhookSecrets.v1", "Webhooks:SecretPassword", "webhook secret");

    public static byte[] NewSecret() => RandomNumberGenerator.GetBytes(32);

    public static string Display(byte[] secret) => Prefix + Convert.ToBase64String(secret);

    public byte[] Protect(Guid endpointId, byte[] secret) => _protector.Protect(Password, Id(endpointId), secret);

    /// <exception cref="CryptographicException">The secret cannot be decrypted with this configuration.</exception>
    public byte[] Unprotect(Guid endpointId, byte[] stored)
    {
        var key = (endpointId, Convert.ToBase64String(SHA256.HashData(stored)));
        return cache.GetOrCreate(key, entry =>
        {
            entry.AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10);
            entry.Size = 1;
            return _protector.Unprotect(Password, Id(endpointId), stored);
        })!;
    }

    // An empty setting means unset here (the options validator only rejects 1 to 15 characters).
    private string? Password => options.Value.SecretPassword is { Length: > 0 } password ? password : null;

    private static string Id(Guid endpointId) => endpointId.ToString("N");
}
