using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>
/// Encrypts a provider credential's secret with ASP.NET Core Data Protection, whose key ring Send Engine keeps in its
/// own PostgreSQL database (<c>data_protection_keys</c>), so every replica reads it. The credential id is part of the
/// purpose: a secret copied to another row does not decrypt.
/// </summary>
public sealed class ProviderSecretProtector(IDataProtectionProvider dataProtection)
{
    private const string Purpose = "SendEngine.ProviderCredentials.v1";

    public byte[] Protect(Guid credentialId, string secret) =>
        dataProtection.CreateProtector(Purpose, credentialId.ToString("N")).Protect(Encoding.UTF8.GetBytes(secret));

    /// <exception cref="System.Security.Cryptography.CryptographicException">Not decryptable with this key ring.</exception>
    public string Unprotect(Guid credentialId, byte[] stored) =>
        Encoding.UTF8.GetString(dataProtection.CreateProtector(Purpose, credentialId.ToString("N")).Unprotect(stored));
}
