using System.ComponentModel.DataAnnotations;

namespace SendEngine.Features.SendJobs;

public sealed class SendJobOptions
{
    public const string Section = "SendJobs";

    /// <summary>Recipients claimed per database round trip (at most 5,000: Member Center's not-sendable re-check of a batch takes that many).</summary>
    [Range(1, 5_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>How long claimed rows stay reserved for a runner without renewal; a crashed runner's rows are recovered after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Attempts per recipient for transient failures (4xx, lost connections) before it is recorded as failed.</summary>
    [Range(1, 50)]
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Backoff before the first retry; doubled per attempt, capped at 30 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The job fails (remaining recipients stay pending) after this many failures in a row with no success.</summary>
    [Range(1, 100_000)]
    public int MaxConsecutiveFailures { get; set; } = 100;

    /// <summary>How often a runner checks for cancellation and for work held by others.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Hangfire jobs that deliver one send job in parallel (on any Send Engine process); 1 is one runner.</summary>
    [Range(1, 64)]
    public int Runners { get; set; } = 1;
}

public sealed class DeliveryOptions
{
    public const string Section = "Delivery";

    /// <summary>SMTP connections (and workers) per runner.</summary>
    [Range(1, 256)]
    public int Concurrency { get; set; } = 8;

    /// <summary>
    /// Recipients a connection marks 'sending' in one database round trip, whose results are then recorded together
    /// with the next group's marks. 1 leaves at most one recipient per connection with an unknown outcome after a crash
    /// (recorded failed, never mailed twice) at one round trip per message; N trades up to N such recipients per
    /// connection for N times fewer round trips. Groups only take recipients that are ready and within the rate limit.
    /// </summary>
    [Range(1, 100)]
    public int GroupSize { get; set; } = 1;

    /// <summary>Messages per second per runner; 0 means no limit.</summary>
    [Range(0, 1_000_000)]
    public double MessagesPerSecond { get; set; }
}
