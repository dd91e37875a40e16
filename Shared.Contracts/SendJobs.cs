namespace Newsletter.Contracts;

// Send Engine's tenant-facing API (integration guide section 4). JSON is snake_case.

/// <summary>
/// POST /api/send-jobs. scheduled_at is ISO 8601 with an offset; omitted or in the past means now. from_email (and
/// from_name) are optional: absent, the platform's from address; given, its domain must be a verified sender domain of
/// the tenant (docs/deliverability.md).
/// </summary>
public sealed record CreateSendJobRequest(
    string? TenantId,
    string? ListId,
    string? Name,
    string? Subject,
    string? BodyHtml,
    string? BodyText,
    string? ScheduledAt,
    string? FromEmail = null,
    string? FromName = null);

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
    DateTimeOffset? ResumeAt = null,
    string? BodyHtml = null,
    string? BodyText = null,
    DateTimeOffset? ThrottledUntil = null,
    string? FromEmail = null,
    string? FromName = null,
    IReadOnlyList<SendJobWarning>? Warnings = null);

/// <summary>Something about a job that does not stop it but should be fixed, e.g. code postal_address_missing.</summary>
public sealed record SendJobWarning(string Code, string Message);

public static class SendJobWarningCodes
{
    /// <summary>The tenant's branding has no postal address: bulk mail goes out without it (CAN-SPAM requires it).</summary>
    public const string PostalAddressMissing = "postal_address_missing";
}

/// <summary>A page of jobs, newest first; pass next_cursor back as after.</summary>
public sealed record SendJobPage(IReadOnlyList<SendJobResponse> Items, string? NextCursor);

public sealed record SendJobRecipientResponse(
    string Email,
    string Status,
    int Attempts,
    string? MessageId,
    string? Detail,
    DateTimeOffset? SentAt,
    DateTimeOffset UpdatedAt,
    long Id = 0,
    string? ResolvedBy = null,
    DateTimeOffset? ResolvedAt = null,
    string? ResolutionNote = null);

/// <summary>
/// POST /api/send-jobs/{id}/recipients/resolve: acknowledges <c>unknown</c> outcomes as sent or failed. Either
/// recipient_ids (the ids of GET …/recipients) or all_unknown: true.
/// </summary>
public sealed record ResolveRecipientsRequest(IReadOnlyList<long>? RecipientIds, bool? AllUnknown, string? Resolution, string? Note);

/// <summary>POST /api/send-jobs/{id}/recipients/resolve: how many rows were resolved, and the job afterwards.</summary>
public sealed record ResolveRecipientsResponse(int Resolved, SendJobResponse Job);

/// <summary>One server-sent event of GET /api/send-jobs/{id}/progress (event name <c>progress</c>).</summary>
/// <param name="ByStatus">Recipient rows per status (every status of <see cref="RecipientStatuses"/>).</param>
/// <param name="SentPerSecond">Messages sent per second over the last 5 seconds.</param>
/// <param name="Errors">failed + unknown + bounced.</param>
/// <param name="Final">True on the last event: the job is completed, cancelled or failed.</param>
public sealed record SendJobProgressEvent(
    string JobId,
    string Status,
    SendJobCounts Counts,
    IReadOnlyDictionary<string, int> ByStatus,
    double SentPerSecond,
    int Remaining,
    int Errors,
    string? PausedReason,
    DateTimeOffset At,
    bool Final);

/// <summary>GET /api/send-jobs/{id}/stats: one row per bucket (minute or hour, UTC) that saw anything.</summary>
public sealed record SendJobStatsResponse(string JobId, string Bucket, IReadOnlyList<SendJobStatsBucket> Series);

public sealed record SendJobStatsBucket(
    DateTimeOffset Start,
    int Sent,
    int Delivered,
    int BouncedHard,
    int BouncedSoft,
    int Complained,
    int Opened,
    int Clicked,
    int Unsubscribed);

/// <summary>
/// POST /api/send-jobs/preview and /test-send: a template as in create, and the merge values of one subscriber
/// (<c>email</c>, <c>unsubscribe_url</c> and the preference keys). test-send also takes <c>to</c>; both take the job's
/// optional <c>from_email</c>/<c>from_name</c> (the test is signed with that domain's key), and optionally the job's
/// <c>list_id</c> (the footer in that list's default language) and a reader <c>lang</c> to show it as (en, zh-TW, zh-CN, ja, ko).
/// </summary>
public sealed record ComposeRequest(
    string? Subject,
    string? BodyHtml,
    string? BodyText,
    IReadOnlyDictionary<string, System.Text.Json.JsonElement>? Merge,
    string? To = null,
    string? FromEmail = null,
    string? FromName = null,
    string? ListId = null,
    string? Lang = null);

public sealed record ComposePreviewResponse(string Subject, string? Html, string? Text);

/// <summary>test-send's answer: the message went out (or not) through the tenant's transport; no job was recorded.</summary>
public sealed record TestSendResponse(string To, string Subject, string Outcome, string MessageId, string Detail);

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
    /// <summary>Not yet attempted, or deferred after a transient failure (also while read ahead for a worker: reading takes no row).</summary>
    public const string Pending = "pending";
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

    public static readonly IReadOnlyList<string> All = [Pending, Sending, Sent, Delivered, Failed, Unknown, Suppressed, Bounced, Cancelled];
}

public sealed record AddSuppressionRequest(string? TenantId, string? Email, string? Reason);

public sealed record SuppressionResponse(string TenantId, string Email, string Reason, string Source, DateTimeOffset CreatedAt);

public sealed record SuppressionPage(IReadOnlyList<SuppressionResponse> Items, string? NextCursor);

/// <summary>GET /admin/status on Send Engine (platform:admin): queues, backlogs and the last hour's delivery.</summary>
/// <param name="DeliveryRatePerMinute">Messages handed over successfully (bulk and transactional) per minute over the last hour.</param>
/// <param name="ErrorRate">Of the last hour's finished attempts (sent, failed, unknown), the share that was not sent (0–1; 0 when none).</param>
public sealed record SendEngineStatusResponse(
    DateTimeOffset At,
    HangfireQueueStatus Hangfire,
    long EmailEventBacklog,
    DateTimeOffset? OldestUnprocessedEventAt,
    long SentLastHour,
    long FailedLastHour,
    long UnknownLastHour,
    double DeliveryRatePerMinute,
    double ErrorRate,
    long WebhookOutboxPending,
    long MemberCenterReportsPending,
    DateTimeOffset? OldestPendingReportAt,
    int JobsSending,
    int JobsPaused);

public sealed record HangfireQueueStatus(long Enqueued, long Scheduled, long Processing, long Failed, IReadOnlyDictionary<string, long> Queues);
