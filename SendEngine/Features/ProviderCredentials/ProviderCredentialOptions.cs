using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>ProviderCredentials__* keys: limits of tenants' own SMTP relays and Tencent accounts and of the live checks.</summary>
public sealed class ProviderCredentialOptions
{
    public const string Section = "ProviderCredentials";

    /// <summary>How long a TCP connection to the server may take (verify and delivery connects).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:01:00")]
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long each step of a check may take: greeting with EHLO and TLS, AUTH/LOGIN, SELECT, the Tencent call.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:01:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The whole check, whatever its steps: the verify route answers within it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:02:00")]
    public TimeSpan VerifyTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>How long delivery trusts its lookup of a tenant's active credential (changes through this process's API apply at once).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan LookupCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

    [Range(1, 100)]
    public int MaxPerTenant { get; set; } = 10;

    /// <summary>Allows hosts on private, loopback and link-local addresses and tls none. Tests and closed networks only.</summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>Allows a Tencent account's endpoint other than https://*.tencentcloudapi.com (a stand-in). Tests only.</summary>
    public bool AllowEndpointOverride { get; set; }

    /// <summary>
    /// PEM files of extra certificates (a test CA or a server's self-signed certificate) that TLS chains may end in,
    /// besides the system's roots. The host name is still checked; nothing else is accepted. Tests only.
    /// </summary>
    public List<string> TrustedCertificates { get; set; } = [];
}

internal sealed class ProviderCredentialOptionsValidator : IValidateOptions<ProviderCredentialOptions>
{
    public ValidateOptionsResult Validate(string? name, ProviderCredentialOptions o)
    {
        foreach (var path in o.TrustedCertificates)
        {
            try
            {
                _ = X509CertificateLoader.LoadCertificateFromFile(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                return ValidateOptionsResult.Fail($"ProviderCredentials:TrustedCertificates: {path} is not a readable certificate ({ex.Message}).");
            }
        }
        return o.VerifyTimeout < o.ConnectTimeout
            ? ValidateOptionsResult.Fail("ProviderCredentials:VerifyTimeout must not be below ConnectTimeout.")
            : ValidateOptionsResult.Success;
    }
}
