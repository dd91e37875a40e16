using System.ComponentModel.DataAnnotations;

namespace SendEngine.Features.ApiKeys;

/// <summary>How Send Engine checks X-Pigeon-Api-Key (section ApiKeys).</summary>
public sealed class ApiKeyOptions
{
    public const string Section = "ApiKeys";

    /// <summary>
    /// How long Member Center's answer about a key (valid, expired, unknown) is reused. At most 30 s: a key deleted in
    /// Member Center is refused here within this time. A key's own expiry is honoured at once, inside the window too.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:00:30")]
    public TimeSpan CacheDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>At most this many answers are cached (one small entry per key seen).</summary>
    [Range(100, 10_000_000)]
    public int CacheSize { get; set; } = 100_000;

    /// <summary>Invalid keys one client address may present per FailedKeyWindow before it gets 429; 0 turns the limit off.</summary>
    [Range(0, 1_000_000)]
    public int FailedKeyLimit { get; set; } = 20;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan FailedKeyWindow { get; set; } = TimeSpan.FromMinutes(1);
}
