using System.ComponentModel.DataAnnotations;

namespace Newsletter.ServiceDefaults.Mail;

/// <summary>Smtp__* keys, shared by Member Center (confirmation mail) and Send Engine (delivery).</summary>
public sealed class SmtpOptions
{
    public const string Section = "Smtp";

    [Required]
    public string Host { get; set; } = "localhost";

    [Range(1, 65535)]
    public int Port { get; set; } = 1025;

    public string? Username { get; set; }
    public string? Password { get; set; }

    /// <summary>STARTTLS when the server offers it (required when true), or implicit TLS on port 465.</summary>
    public bool UseTls { get; set; }

    [Required, EmailAddress]
    public string FromAddress { get; set; } = "newsletter@localhost";

    public string FromName { get; set; } = "Newsletter";

    /// <summary>Where replies go (Reply-To), when not to the From address; unset = no Reply-To header.</summary>
    [EmailAddress]
    public string? ReplyToAddress { get; set; }

    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
}
