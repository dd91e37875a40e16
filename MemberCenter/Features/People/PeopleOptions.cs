using System.ComponentModel.DataAnnotations;

namespace MemberCenter.Features.People;

/// <summary>The console as Member Center registers it (Console__*): seeded only when ClientSecret is set.</summary>
public sealed class ConsoleOptions
{
    public const string Section = "Console";

    [Required, MaxLength(100)]
    public string ClientId { get; set; } = "console";

    [MinLength(16)]
    public string? ClientSecret { get; set; }

    /// <summary>Its redirect URIs are {PublicUrl}/signin-oidc and {PublicUrl}/signout-callback-oidc.</summary>
    [Required, Url]
    public string PublicUrl { get; set; } = "http://localhost:7870";

    public Uri Link(string path) => new(PublicUrl.TrimEnd('/') + path);
}

/// <summary>Sign-in settings of people (Identity).</summary>
public sealed class PeopleOptions
{
    public const string Section = "People";

    /// <summary>Invitations can be accepted for this long.</summary>
    [Range(typeof(TimeSpan), "01:00:00", "30.00:00:00")]
    public TimeSpan InvitationLifetime { get; set; } = TimeSpan.FromDays(7);

    [Range(typeof(TimeSpan), "00:05:00", "30.00:00:00")]
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>
    /// The passkeys' relying party id (a domain, e.g. <c>example.com</c>): passkeys work on that domain and its
    /// subdomains. Unset: the host of the request. Changing it later makes the passkeys registered before unusable.
    /// </summary>
    [MaxLength(253)]
    public string? PasskeyServerDomain { get; set; }

    /// <summary>How many passkeys a person may register.</summary>
    [Range(1, 100)]
    public int MaxPasskeys { get; set; } = 10;
}
