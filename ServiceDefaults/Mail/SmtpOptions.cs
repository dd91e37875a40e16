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

    /// <summary>
    /// How long to wait for the connection, the greeting and each command's reply (and for each write). RFC 5321
    /// 4.5.3.2 gives the server 5 minutes for MAIL and RCPT (2 for DATA's 354, 5 for the greeting).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long to wait for the reply to the end of DATA (the final dot, or BDAT LAST): RFC 5321 4.5.3.2.6 gives the
    /// server 10 minutes, as it may be checking the message. A reply that never comes leaves the outcome unknown, so
    /// this is the longer one; where the phases cannot be told apart (Member Center's outbox) it is the only one.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan DataTimeout { get; set; } = TimeSpan.FromMinutes(10);
}
