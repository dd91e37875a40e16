using System.ComponentModel.DataAnnotations;

namespace MemberCenter.Features.Auth;

public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>The <c>iss</c> of every token and the base of the discovery document.</summary>
    [Required, Url]
    public string Issuer { get; set; } = "http://localhost:7850/";

    /// <summary>The <c>aud</c> of send_api tokens.</summary>
    [Required]
    public string SendEngineAudience { get; set; } = Newsletter.Contracts.Audiences.SendEngineApi;

    [Range(typeof(TimeSpan), "00:01:00", "1.00:00:00")]
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>False only for local development on plain http.</summary>
    public bool RequireHttps { get; set; } = true;

    /// <summary>Failed client authentications allowed per client address and client_id within the window; 0 turns the limits off.</summary>
    [Range(0, 100_000)]
    public int FailedClientAuthenticationLimit { get; set; } = 10;

    /// <summary>
    /// Failed client authentications allowed per client_id within the window, from all addresses together, so that
    /// rotating addresses (an IPv6 prefix holds billions) does not multiply the secret checks an attacker gets.
    /// </summary>
    [Range(1, 100_000)]
    public int FailedClientAuthenticationLimitPerClient { get; set; } = 50;

    [Range(typeof(TimeSpan), "00:00:06", "1.00:00:00")]
    public TimeSpan FailedClientAuthenticationWindow { get; set; } = TimeSpan.FromMinutes(1);
}

public sealed class SigningKeyOptions
{
    public const string Section = "Auth:SigningKeys";

    /// <summary>How long a key signs tokens.</summary>
    [Range(typeof(TimeSpan), "01:00:00", "3650.00:00:00")]
    public TimeSpan Lifetime { get; set; } = TimeSpan.FromDays(90);

    /// <summary>The next key is created this long before the current one stops signing.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "365.00:00:00")]
    public TimeSpan RotateBefore { get; set; } = TimeSpan.FromDays(14);

    /// <summary>
    /// A new key is published in the JWKS this long before it signs anything, so relying parties that cache
    /// the JWKS have it before they meet a token signed with it.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00")]
    public TimeSpan PrePublish { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// Protects the private keys stored in the database (PKCS#12, PBES2 AES-256 / SHA-256). Keys stored unprotected
    /// before a password was set are encrypted with it on start. Unset: stored unprotected, as safe as the database
    /// (refused in Production unless <see cref="AllowUnencrypted"/>).
    /// </summary>
    [MinLength(16)]
    public string? Password { get; set; }

    /// <summary>
    /// In Production Member Center refuses to start without <see cref="Password"/>; true stores the keys unprotected
    /// anyway (for a database that is encrypted and access-controlled some other way).
    /// </summary>
    public bool AllowUnencrypted { get; set; }

    /// <summary>How often each replica re-reads the key table (rotations done by another replica).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromMinutes(1);
}

public sealed class BootstrapOptions
{
    public const string Section = "Bootstrap";

    /// <summary>The platform administrator client (scope platform:admin). Created or updated on start.</summary>
    public string? AdminClientId { get; set; }
    public string? AdminClientSecret { get; set; }

    /// <summary>Send Engine's service client (internal scopes, no tenant).</summary>
    public string? SendEngineClientId { get; set; }
    public string? SendEngineClientSecret { get; set; }

    /// <summary>A platform operator created (or given the operator role and this password) on start; both or neither.</summary>
    public string? OperatorEmail { get; set; }
    public string? OperatorPassword { get; set; }
}
