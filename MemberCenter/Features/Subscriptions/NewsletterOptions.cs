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
}

public sealed class PublicUrlOptions
{
    public const string Section = "PublicUrls";

    /// <summary>Base of the links put in email (confirm, unsubscribe, preferences).</summary>
    [Required, Url]
    public string MemberCenter { get; set; } = "http://localhost:7850";

    public string Link(string pathAndQuery) => MemberCenter.TrimEnd('/') + pathAndQuery;
}
