namespace Newsletter.Contracts;

// Send Engine's tenant-facing API (integration guide section 4). JSON is snake_case.

/// <summary>POST /api/send-jobs. scheduled_at is ISO 8601 with an offset; omitted or in the past means now.</summary>
public sealed record CreateSendJobRequest(
    string? TenantId,
    string? ListId,
    string? Name,
    string? Subject,
    string? BodyHtml,
    string? BodyText,
    string? ScheduledAt);

/// <summary>
/// sent counts every message the transport accepted (delivered included); delivered is the part the ESP confirmed;
/// unknown, the messages handed over whose answer never came (never retried, to avoid a duplicate).
/// </summary>
public sealed record SendJobCounts(int Total, int Sent, int Failed, int Suppressed, int Bounced, int Cancelled, int Remaining, int Delivered = 0, int Unknown = 0);

public sealed record SendJobResponse(
    string Id,
    string TenantId,
    string ListId,
    string Name,
    string Subject,
    string Status,
    SendJobCounts Counts,
    DateTimeOffset ScheduledAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    DateTimeOffset? CancelledAt,
    string? LastError,
    SendJobEventCounts? Events = null,
    string? PausedReason = null,
    DateTimeOffset? ResumeAt = null);

/// <summary>A page of jobs, newest first; pass next_cursor back as after.</summary>
public sealed record SendJobPage(IReadOnlyList<SendJobResponse> Items, string? NextCursor);

public sealed record SendJobRecipientResponse(
    string Email,
    string Status,
    int Attempts,
    string? MessageId,
    string? Detail,
    DateTimeOffset? SentAt,
    DateTimeOffset UpdatedAt);

public sealed record SendJobRecipientPage(IReadOnlyList<SendJobRecipientResponse> Items, string? NextCursor);

public static class SendJobStatuses
{
    public const string Scheduled = "scheduled";
    public const string Queued = "queued";
    public const string Sending = "sending";
    /// <summary>Waiting out an outage until resume_at, or for an operator's resume when resume_at is null (paused_reason says why).</summary>
    public const string Paused = "paused";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";
    public const string Failed = "failed";
}

/// <summary>Per-recipient outcome, as GET /api/send-jobs/{id}/recipients?status= reports it.</summary>
public static class RecipientStatuses
{
    public const string Pending = "pending";
    /// <summary>Reserved by a worker, not yet attempted.</summary>
    public const string Claimed = "claimed";
    /// <summary>The SMTP transaction is in progress.</summary>
    public const string Sending = "sending";
    public const string Sent = "sent";
    /// <summary>The ESP reported the message delivered (Tencent SES webhook).</summary>
    public const string Delivered = "delivered";
    public const string Failed = "failed";
    /// <summary>The message was handed over but no answer came (timeout or lost connection after the end of DATA, or the runner died during the transaction): never retried automatically, to avoid a duplicate.</summary>
    public const string Unknown = "unknown";
    /// <summary>Skipped: on the tenant's suppression list, or unsubscribed/undeliverable at Member Center since the snapshot.</summary>
    public const string Suppressed = "suppressed";
    public const string Bounced = "bounced";
    public const string Cancelled = "cancelled";

    public static readonly IReadOnlyList<string> All = [Pending, Claimed, Sending, Sent, Delivered, Failed, Unknown, Suppressed, Bounced, Cancelled];
}

public sealed record AddSuppressionRequest(string? TenantId, string? Email, string? Reason);

public sealed record SuppressionResponse(string TenantId, string Email, string Reason, string Source, DateTimeOffset CreatedAt);

public sealed record SuppressionPage(IReadOnlyList<SuppressionResponse> Items, string? NextCursor);
