using System.ComponentModel.DataAnnotations;

namespace SendEngine.Features.Reputation;

/// <summary>The reputation guard's thresholds (docs/deliverability.md has the figures behind the defaults).</summary>
public sealed class ReputationOptions
{
    public const string Section = "Reputation";

    /// <summary>Whether this process runs the evaluation loop (every process may; state changes are atomic).</summary>
    public bool GuardEnabled { get; set; } = true;

    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan EvaluationInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Hard bounces / delivered at which the tenant gets a warning (2 %).</summary>
    [Range(0.0001, 1)]
    public double WarnBounceRate { get; set; } = 0.02;

    /// <summary>Complaints / delivered at which the tenant gets a warning (0.08 %).</summary>
    [Range(0.00001, 1)]
    public double WarnComplaintRate { get; set; } = 0.0008;

    /// <summary>Hard bounces / delivered at which the tenant's bulk mail is paused (5 %, SES's review line).</summary>
    [Range(0.0001, 1)]
    public double PauseBounceRate { get; set; } = 0.05;

    /// <summary>Complaints / delivered at which the tenant's bulk mail is paused (0.1 %).</summary>
    [Range(0.00001, 1)]
    public double PauseComplaintRate { get; set; } = 0.001;

    /// <summary>Delivered messages a window needs before its rates count (a handful of bounces of 20 messages say little).</summary>
    [Range(1, 100_000_000)]
    public long MinimumVolume { get; set; } = 500;

    /// <summary>A job's first this many recipients are checked for a purchased list.</summary>
    [Range(1, 1_000_000)]
    public int JobSampleSize { get; set; } = 1000;

    /// <summary>Decided recipients (of the sample) before a job's share is judged; the share can only be judged early once it is this solid.</summary>
    [Range(1, 1_000_000)]
    public int JobMinimumSample { get; set; } = 200;

    /// <summary>Hard bounces among the decided recipients of a job's sample above which the job is paused (10 %).</summary>
    [Range(0.0001, 1)]
    public double JobBounceRate { get; set; } = 0.10;
}

/// <summary>
/// Per-tenant bulk sending limits: the platform defaults (an operator can set a tenant's own through the admin API;
/// null is unlimited) and the warm-up of a new tenant, counted in PostgreSQL across every Send Engine process.
/// </summary>
public sealed class SendingLimitOptions
{
    public const string Section = "SendingLimits";

    [Range(1, int.MaxValue)]
    public int? MessagesPerHour { get; set; }

    [Range(1, int.MaxValue)]
    public int? MessagesPerDay { get; set; }

    /// <summary>
    /// Warm-up: a tenant's daily limit on its first day (counted from its first bulk send), doubling each day until it
    /// reaches <see cref="MessagesPerDay"/> (or for <see cref="WarmupDays"/> when that is unlimited). Null: no warm-up.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int? WarmupFirstDay { get; set; }

    [Range(1, 60)]
    public int WarmupDays { get; set; } = 14;

    /// <summary>The "hour" of the hourly limit; a day is 24 of them. Only tests shorten it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Window { get; set; } = TimeSpan.FromHours(1);
}
