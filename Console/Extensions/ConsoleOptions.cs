using System.ComponentModel.DataAnnotations;

namespace NewsletterConsole.Extensions;

/// <summary>The console's settings (section <c>Console</c>; environment variables <c>Console__PublicUrl</c> etc.).</summary>
public sealed class ConsoleOptions
{
    public const string Section = "Console";

    /// <summary>Where people reach the console; the OAuth redirect URIs are built from it.</summary>
    [Required, Url]
    public string PublicUrl { get; set; } = "";

    /// <summary>Member Center's base URL as the console reaches it (discovery, token endpoint, tenant APIs).</summary>
    [Required, Url]
    public string MemberCenterUrl { get; set; } = "";

    /// <summary>Send Engine's base URL as the console reaches it.</summary>
    [Required, Url]
    public string SendEngineUrl { get; set; } = "";

    /// <summary>Send Engine's URL as a browser reaches it (the /hangfire link); defaults to <see cref="SendEngineUrl"/>.</summary>
    public string? SendEnginePublicUrl { get; set; }

    [Required]
    public string ClientId { get; set; } = "console";

    /// <summary>The confidential client's secret; Member Center's bootstrap seeds the client with the same value.</summary>
    [Required, MinLength(16)]
    public string ClientSecret { get; set; } = "";

    /// <summary>Per-attempt timeout of an API call (the streaming progress view has none).</summary>
    public TimeSpan ApiTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Refresh the access token when it has less than this left.</summary>
    public TimeSpan RefreshBefore { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a signed-in session lasts without use.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromHours(8);

    /// <summary>How often expired sessions are deleted from the console's database.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SessionCleanupInterval { get; set; } = TimeSpan.FromMinutes(15);
}

/// <summary>Section <c>Auth</c>: the issuer Member Center signs tokens as (shared with the services).</summary>
public sealed class ConsoleAuthOptions
{
    public const string Section = "Auth";

    [Required, Url]
    public string Issuer { get; set; } = "";
}
