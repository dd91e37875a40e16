using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.BounceMailboxes;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>BounceMailboxes__* keys: the platform mailbox and how every mailbox's reader behaves.</summary>
public sealed class BounceMailboxOptions
{
    public const string Section = "BounceMailboxes";

    /// <summary>False: this process runs no readers (another Send Engine process does; the APIs still work).</summary>
    public bool ReadersEnabled { get; set; } = true;

    /// <summary>The platform's own mailbox (the return-path domain's); none when <see cref="PlatformMailboxOptions.Host"/> is empty.</summary>
    public PlatformMailboxOptions Platform { get; set; } = new();

    /// <summary>How often a mailbox is scanned when its server has no IDLE; with IDLE, how often IDLE is renewed and the folder rescanned (retries).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:25:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The first wait after a failed connection or login; it doubles per failure up to <see cref="ReconnectMaxDelay"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00")]
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromSeconds(2);

    [Range(typeof(TimeSpan), "00:00:00.050", "1.00:00:00")]
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often the supervisor rereads the tenant mailboxes and retries locks held by other processes.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest one IMAP command (or connect) may take before the connection counts as dead.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Scans whose events could not be stored before a message is given up (moved to the unparsable folder).</summary>
    [Range(1, 1000)]
    public int MaxAttempts { get; set; } = 10;

    /// <summary>Larger messages are not downloaded: moved to the unparsable folder (a DSN is a few KB plus the original).</summary>
    [Range(1024, 100 * 1024 * 1024)]
    public int MaxMessageBytes { get; set; } = 10 * 1024 * 1024;

    [Range(1, 100)]
    public int MaxMailboxesPerTenant { get; set; } = 5;

    /// <summary>Allows tenant mailboxes on private, loopback and link-local addresses. Tests and closed networks only.</summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>
    /// With it, tenant mailbox passwords are encrypted with AES-256-GCM under a key derived from it, so every replica
    /// with the password reads them; without it, with ASP.NET Core Data Protection's key ring.
    /// </summary>
    public string? SecretPassword { get; set; }
}

public sealed class PlatformMailboxOptions
{
    public string? Host { get; set; }
    public int Port { get; set; } = 993;
    /// <summary>SslOnConnect, StartTls or None (also ssl_on_connect, start_tls, none).</summary>
    public string Tls { get; set; } = "SslOnConnect";
    public string? Username { get; set; }
    public string? Password { get; set; }
    public string Folder { get; set; } = "INBOX";
    public string ProcessedFolder { get; set; } = "Processed";
    public string UnparsableFolder { get; set; } = "Unparsable";
    /// <summary>Development only: accept an invalid server certificate.</summary>
    public bool AllowInvalidCertificate { get; set; }

    public bool Configured => !string.IsNullOrWhiteSpace(Host);
}

internal sealed class BounceMailboxOptionsValidator(IHostEnvironment environment) : IValidateOptions<BounceMailboxOptions>
{
    public ValidateOptionsResult Validate(string? name, BounceMailboxOptions o)
    {
        if (o.SecretPassword is { Length: > 0 and < 16 })
        {
            return ValidateOptionsResult.Fail("BounceMailboxes:SecretPassword must be at least 16 characters.");
        }
        if (o.ReconnectMaxDelay < o.ReconnectMinDelay)
        {
            return ValidateOptionsResult.Fail("BounceMailboxes:ReconnectMaxDelay must not be below ReconnectMinDelay.");
        }
        var p = o.Platform;
        if (p.Configured)
        {
            if (BounceMailboxTlsNames.Normalise(p.Tls) is null)
            {
                return ValidateOptionsResult.Fail("BounceMailboxes:Platform:Tls must be SslOnConnect, StartTls or None.");
            }
            if (p.Port is < 1 or > 65535 || string.IsNullOrWhiteSpace(p.Username) || string.IsNullOrEmpty(p.Password))
            {
                return ValidateOptionsResult.Fail("BounceMailboxes:Platform needs Port (1-65535), Username and Password with Host.");
            }
            if (string.IsNullOrWhiteSpace(p.Folder) || string.IsNullOrWhiteSpace(p.ProcessedFolder) || string.IsNullOrWhiteSpace(p.UnparsableFolder)
                || p.ProcessedFolder == p.Folder || p.UnparsableFolder == p.Folder)
            {
                return ValidateOptionsResult.Fail("BounceMailboxes:Platform: Folder, ProcessedFolder and UnparsableFolder must be set, the latter two other than Folder.");
            }
            if (p.AllowInvalidCertificate && !environment.IsDevelopment())
            {
                return ValidateOptionsResult.Fail("BounceMailboxes:Platform:AllowInvalidCertificate is for Development only.");
            }
        }
        return ValidateOptionsResult.Success;
    }
}

/// <summary>The configuration spelling (SslOnConnect) and the API spelling (ssl_on_connect) of the TLS modes.</summary>
public static class BounceMailboxTlsNames
{
    public static string? Normalise(string? value) => value?.Trim().Replace("_", "", StringComparison.Ordinal).ToLowerInvariant() switch
    {
        "sslonconnect" or "ssl" or "tls" or "imaps" => BounceMailboxTls.SslOnConnect,
        "starttls" => BounceMailboxTls.StartTls,
        "none" => BounceMailboxTls.None,
        _ => null,
    };
}
