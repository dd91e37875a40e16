using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Newsletter.ServiceDefaults.Privacy;

public sealed class PrivacyOptions
{
    public const string Section = "Privacy";

    /// <summary>
    /// The per-installation secret of the keyed address hash (at least 32 characters, e.g. 32 random bytes as base64).
    /// Without it a hash of a guessable address could be reversed by trying addresses; with it, only this installation can
    /// tell which address a hash stands for. Changing it makes the hashes of erased addresses unrecognisable.
    /// </summary>
    [Required, MinLength(32)]
    public string AddressHashKey { get; set; } = "";
}

/// <summary>
/// The keyed hash both services keep of an erased address instead of the address: HMAC-SHA256(Privacy:AddressHashKey,
/// UTF-8 of the normalised address, i.e. trimmed and lower-cased, the domain in IDNA ASCII as Member Center stores it).
/// Each service hashes with its own configuration and compares only its own hashes.
/// </summary>
public sealed class AddressHasher(IOptions<PrivacyOptions> options)
{
    /// <summary>The prefix of a stored hash where an address would otherwise be (e.g. Send Engine's suppression rows).</summary>
    public const string ErasedPrefix = "erased:";

    public byte[] Hash(string normalisedAddress) =>
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(options.Value.AddressHashKey), Encoding.UTF8.GetBytes(normalisedAddress.Trim().ToLowerInvariant()));

    /// <summary><c>erased:</c> and the hash as 64 lowercase hex digits: stands in for the address in a text column.</summary>
    public string ErasedMarker(string normalisedAddress) => ErasedPrefix + Convert.ToHexStringLower(Hash(normalisedAddress));

    public static IServiceCollection AddAddressHasher(IServiceCollection services)
    {
        services.AddOptions<PrivacyOptions>().BindConfiguration(PrivacyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<AddressHasher>();
        return services;
    }
}
