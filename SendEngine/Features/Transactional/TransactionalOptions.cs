using System.ComponentModel.DataAnnotations;

namespace SendEngine.Features.Transactional;

/// <summary>Transactional:… (POST /api/v1/email limits and the dispatcher).</summary>
public sealed class TransactionalOptions
{
    public const string Section = "Transactional";

    /// <summary>The whole request body; more is 413 (attachments travel base64 in it).</summary>
    [Range(1024, 50 * 1024 * 1024)]
    public int MaxRequestBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Attachments and images together; more is 413.</summary>
    [Range(0, 100)]
    public int MaxAttachments { get; set; } = 10;

    /// <summary>One attachment or image, decoded; more is 413.</summary>
    [Range(1, 50 * 1024 * 1024)]
    public int MaxAttachmentBytes { get; set; } = 5 * 1024 * 1024;

    /// <summary>Entries of message.to; more is a VALIDATION_ERROR.</summary>
    [Range(1, 10_000)]
    public int MaxRecipients { get; set; } = 1000;

    /// <summary>Retries of a transient failure (4xx, throttling) per task after the first attempt, as the seed states.</summary>
    [Range(0, 10)]
    public int MaxRetries { get; set; } = 3;

    /// <summary>Wait before the first retry; doubled per retry.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Wait before trying again a task whose transport was unreachable or refused our configuration (not an attempt).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan OutageRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A task whose transport stayed unavailable this long after it was due is rejected (soft-bounce).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Tasks one dispatcher handles per batch (claimed <see cref="GroupSize"/> at a time).</summary>
    [Range(1, 1000)]
    public int BatchSize { get; set; } = 50;

    /// <summary>
    /// Tasks of one dispatcher claimed straight into sending in one statement before the first of them is sent, and
    /// whose sent results are recorded in one statement after the last: two synchronous commits per group instead of two
    /// per message. The price: a dispatcher that dies mid-group leaves up to this many tasks unknown (never retried),
    /// including some never attempted. 1 claims and records each message alone. 16 rather than 8: 20 % less machine
    /// CPU per one-recipient request and 48 % per ten-recipient one (docs/performance.md); a group only takes the tasks
    /// due at that moment, so under a light load groups stay small.
    /// </summary>
    [Range(1, 100)]
    public int GroupSize { get; set; } = 16;

    /// <summary>
    /// Most requests of POST /api/v1/email stored together in one transaction (group commit, TransactionalIntake): those
    /// that arrive while a write is in flight wait for the next one instead of committing each alone. 1 stores each
    /// request alone.
    /// </summary>
    [Range(1, 1000)]
    public int IntakeGroupSize { get; set; } = 64;

    /// <summary>Group writes in flight at once (each a connection): one commit's flush overlaps the next group's statements.</summary>
    [Range(1, 16)]
    public int IntakeWriters { get; set; } = 2;

    /// <summary>Dispatchers in this process (each with its own transport session).</summary>
    [Range(0, 64)]
    public int Dispatchers { get; set; } = 4;

    /// <summary>
    /// How long a dispatcher's transport session (an SMTP connection) is kept open after a batch, for the next batches;
    /// 0 closes it at the end of each batch. Well under the 5 minutes RFC 5321 gives a server before it may close an idle
    /// connection (a stressed Postfix closes after 10 s); a kept connection found closed is replaced at once.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest sleep between claims when nothing wakes the dispatchers (scheduled tasks and retries coming due).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a claimed group (sending) stays with its dispatcher before another records it unknown (the dispatcher
    /// died mid-transaction). Longer than a batch takes to send.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:05", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How far ahead send_at may be.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan MaxScheduleAhead { get; set; } = TimeSpan.FromDays(365);

    /// <summary>Page size of GET /api/v1/email when none is given, and the largest allowed.</summary>
    [Range(1, 1000)]
    public int MaxPageSize { get; set; } = 100;
}
