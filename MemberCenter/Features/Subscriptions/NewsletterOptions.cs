using System.ComponentModel.DataAnnotations;

namespace MemberCenter.Features.Subscriptions;

public sealed class NewsletterOptions
{
    public const string Section = "Newsletter";

    [Range(typeof(TimeSpan), "00:05:00", "90.00:00:00")]
    public TimeSpan ConfirmTokenLifetime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Long enough for the links in mail already sent.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan UnsubscribeTokenLifetime { get; set; } = TimeSpan.FromDays(60);

    /// <summary>
    /// The least time between two confirmation mails to one address for one list; a subscribe within it queues no mail
    /// (answered as usual, recorded in the consent trail). Zero: no interval.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan ConfirmationMailInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>At most this many confirmation mails to one address for one list in a day-long window.</summary>
    [Range(1, 1000)]
    public int ConfirmationMailsPerDay { get; set; } = 5;

    /// <summary>How long a link-signing key signs new unsubscribe links before the next one takes over.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "365.00:00:00")]
    public TimeSpan LinkKeyRotation { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Encrypts the link-signing keys stored in PostgreSQL (AES-256-GCM, key from PBKDF2). Unset: ASP.NET Core Data
    /// Protection encrypts them with its own key ring. Every replica needs the same password (or key ring).
    /// </summary>
    [MinLength(16)]
    public string? LinkKeyPassword { get; set; }

    /// <summary>How often each replica re-reads the link keys (rotation, retirement).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LinkKeyRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);
}

public sealed class PublicUrlOptions
{
    public const string Section = "PublicUrls";

    /// <summary>Base of the links put in email (confirm, unsubscribe, preferences).</summary>
    [Required, Url]
    public string MemberCenter { get; set; } = "http://localhost:7850";

    public string Link(string pathAndQuery) => MemberCenter.TrimEnd('/') + pathAndQuery;
}
