using System.ComponentModel.DataAnnotations;
using System.Net;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.SenderDomains;

/// <summary>SenderDomains__* keys: registration limits, the records tenants publish, DNS verification and enforcement.</summary>
public sealed class SenderDomainOptions
{
    public const string Section = "SenderDomains";

    [Range(1, 10_000)]
    public int MaxPerTenant { get; set; } = 100;

    /// <summary>
    /// How long a tenant's domain set (and a domain's signing key) is reused by the send paths. Changes through this
    /// process apply at once; through another replica, within this time.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Mail from a registered but not verified domain is sent (bulk jobs are accepted, transactional mail is not
    /// rejected), unsigned by the domain's key. Unset: true in Development only.
    /// </summary>
    public bool? AllowUnverified { get; set; }

    /// <summary>
    /// Encrypts the DKIM private keys at rest (AES-256-GCM under a key derived from it, so every replica with the
    /// password reads them); unset: ASP.NET Core Data Protection's key ring. At least 16 characters.
    /// </summary>
    public string? KeyPassword { get; set; }

    /// <summary>The platform's SPF record that tenants include (<c>include:{SpfInclude}</c>): the sending IPs.</summary>
    [Required, RegularExpression(@"^[A-Za-z0-9._-]+$")]
    public string SpfInclude { get; set; } = "_spf.send-engine.localhost";

    /// <summary>The label of the return-path (bounce) domain under the sender domain: <c>{label}.{domain}</c>.</summary>
    [Required, RegularExpression(@"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    public string ReturnPathLabel { get; set; } = "bounce";

    /// <summary>The platform's bounce mail host: the MX of every return-path domain.</summary>
    [Required, RegularExpression(@"^[A-Za-z0-9._-]+$")]
    public string BounceMxHost { get; set; } = "bounce-mx.send-engine.localhost";

    /// <summary>The rua= mailbox of the suggested DMARC record (aggregate reports); unset: a record without rua.</summary>
    [EmailAddress]
    public string? DmarcReportAddress { get; set; }

    /// <summary>The last field of the Feedback-ID header (Gmail's feedback loop: the sender's id, the platform's).</summary>
    [Required, RegularExpression(@"^[A-Za-z0-9._-]{1,64}$")]
    public string FeedbackSenderId { get; set; } = "newsletter";

    /// <summary>Resolvers for the verification, "host" or "host:port" (IPv6 "[addr]:port"); empty: the system's.</summary>
    public List<string> DnsServers { get; set; } = [];

    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan DnsTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a rotated-out key stays published, checked and listed before it is retired.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "90.00:00:00")]
    public TimeSpan RotationOverlap { get; set; } = TimeSpan.FromDays(7);

    /// <summary>The daily re-check skips domains checked more recently than this.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "7.00:00:00")]
    public TimeSpan RecheckAfter { get; set; } = TimeSpan.FromHours(20);

    /// <summary>The resolvers of <see cref="DnsServers"/> as end points (port 53 when none is given).</summary>
    public static bool TryParseServer(string value, out IPEndPoint endPoint)
    {
        if (IPEndPoint.TryParse(value.Trim(), out var parsed) && parsed is not null)
        {
            endPoint = parsed.Port == 0 ? new IPEndPoint(parsed.Address, 53) : parsed;
            return true;
        }
        endPoint = null!;
        return false;
    }
}

internal sealed class SenderDomainOptionsValidator : IValidateOptions<SenderDomainOptions>
{
    public ValidateOptionsResult Validate(string? name, SenderDomainOptions o)
    {
        if (o.KeyPassword is { Length: > 0 and < 16 })
        {
            return ValidateOptionsResult.Fail("SenderDomains:KeyPassword must be at least 16 characters.");
        }
        foreach (var server in o.DnsServers)
        {
            if (!SenderDomainOptions.TryParseServer(server, out _))
            {
                return ValidateOptionsResult.Fail($"SenderDomains:DnsServers: '{server}' is not an IP address with an optional port.");
            }
        }
        return ValidateOptionsResult.Success;
    }
}
