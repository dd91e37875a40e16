using System.ComponentModel.DataAnnotations;

namespace SendEngine.Delivery;

public sealed class SendJobOptions
{
    public const string Section = "SendJobs";

    /// <summary>Recipients claimed per database round trip (at most 5,000: Member Center's not-sendable re-check of a batch takes that many).</summary>
    [Range(1, 5_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>How long claimed rows stay reserved for a runner without renewal; a crashed runner's rows are recovered after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Attempts per recipient for deferrals (a 4xx reply to RCPT or to the end of DATA) before it is recorded as failed.</summary>
    [Range(1, 50)]
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Backoff before the first retry; doubled per attempt, capped at 30 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a job paused by an outage (SMTP relay, Member Center) waits before it tries again, at first. The wait then
    /// grows with the outage (the time since it began), up to <see cref="OutageRetryMaxDelay"/>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan OutageRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan OutageRetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>After this long of continuous outage the job stops retrying and stays paused for an operator (POST …/resume).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often a runner checks for cancellation and for work held by others.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Hangfire jobs that deliver one send job in parallel (on any Send Engine process); 1 is one runner.</summary>
    [Range(1, 64)]
    public int Runners { get; set; } = 1;

    /// <summary>How often GET /api/send-jobs/{id}/progress sends an event (one shared poller per job and process).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often the progress stream also sends an SSE comment, so proxies keep an idle stream open.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan ProgressHeartbeat { get; set; } = TimeSpan.FromSeconds(15);
}

public sealed class DeliveryOptions
{
    public const string Section = "Delivery";

    /// <summary>SMTP connections (and workers) per runner.</summary>
    [Range(1, 256)]
    public int Concurrency { get; set; } = 8;

    /// <summary>
    /// Recipients a connection holds marked 'sending' at most (its window): each (synchronously committed) database round
    /// trip records the results since the last one and marks rows to fill the window again, made when a quarter of the
    /// window is left to send so that the commit overlaps the sending. After a crash of Send Engine or PostgreSQL, every
    /// row marked and not recorded becomes 'unknown' (never mailed twice, but possibly never mailed): at most Concurrency ×
    /// GroupSize rows per runner, 256 with the defaults. 1 makes that one per connection at one fsync'd round trip per
    /// message; 32 shares each round trip and commit among a group and leaves a quarter (8 messages) to cover the next
    /// mark's commit: against 16, the job's CPU per message 1.04-1.08 times bare MailKit's instead of 1.18-1.19, and
    /// 84-93 % of its rate instead of 73-86 % (docs/performance.md). Groups only take recipients that are ready and
    /// within the rate limit.
    /// </summary>
    [Range(1, 100)]
    public int GroupSize { get; set; } = 32;

    /// <summary>Messages per second per runner; 0 means no limit.</summary>
    [Range(0, 1_000_000)]
    public double MessagesPerSecond { get; set; }
}
