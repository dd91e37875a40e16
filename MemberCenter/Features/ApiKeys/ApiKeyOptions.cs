using System.ComponentModel.DataAnnotations;

namespace MemberCenter.Features.ApiKeys;

/// <summary>Applications and API keys (section ApiKeys).</summary>
public sealed class ApiKeyOptions
{
    public const string Section = "ApiKeys";

    /// <summary>How long a rotated key keeps working beside its replacement, unless the rotation names overlap_hours.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00")]
    public TimeSpan RotationOverlap { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// last_used_at is written at most once per key in this interval: a verification inside it writes nothing
    /// (Send Engine caches answers, so verifications are already far fewer than requests).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan LastUsedPrecision { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Keys an application may have that are not deleted (expired ones count until deleted).</summary>
    [Range(1, 10_000)]
    public int MaxKeysPerApplication { get; set; } = 50;
}
