using System.Text.Json;

namespace Newsletter.Contracts.Transactional;

// Seed 003 (Pigeon, Mandrill-style): POST /api/v1/email and its read routes. JSON is snake_case.

/// <summary>POST /api/v1/email. send_at is "YYYY-MM-DD HH:MM:SS" in UTC; absent or past means now.</summary>
public sealed record SendEmailRequest(EmailMessage? Message, string? SendAt, EmailCallback? Callback);

/// <summary>The seed's <c>message</c>: every field but from_email and to is optional.</summary>
public sealed record EmailMessage(
    string? Html,
    string? Text,
    string? Subject,
    string? FromEmail,
    string? FromName,
    IReadOnlyList<EmailRecipient>? To,
    IReadOnlyDictionary<string, string>? Headers,
    bool? Important,
    bool? PreserveRecipients,
    string? BccAddress,
    bool? Merge,
    string? MergeLanguage,
    IReadOnlyList<MergeVar>? GlobalMergeVars,
    IReadOnlyList<RecipientMergeVars>? MergeVars,
    IReadOnlyDictionary<string, JsonElement>? Metadata,
    IReadOnlyList<RecipientMetadata>? RecipientMetadata,
    IReadOnlyList<EmailAttachment>? Attachments,
    IReadOnlyList<EmailAttachment>? Images);

/// <summary>type: to (default), cc or bcc.</summary>
public sealed record EmailRecipient(string? Email, string? Name, string? Type);

/// <summary>A merge variable; the name is case-insensitive and may not start with "_". content is a string (other JSON values are merged as their JSON text).</summary>
public sealed record MergeVar(string? Name, JsonElement? Content);

public sealed record RecipientMergeVars(string? Rcpt, IReadOnlyList<MergeVar>? Vars);

public sealed record RecipientMetadata(string? Rcpt, IReadOnlyDictionary<string, JsonElement>? Values);

/// <summary>An attachment or inline image: MIME type, file name (for images the Content-ID, used as cid:NAME), base64 content.</summary>
public sealed record EmailAttachment(string? Type, string? Name, string? Content);

/// <summary>type: request (once, when every task is final) or recipient (once per task).</summary>
public sealed record EmailCallback(string? Url, string? Type);

/// <summary>The answer of POST /api/v1/email: one task per recipient.</summary>
public sealed record SendEmailResponse(string RequestId, IReadOnlyList<EmailTaskResult> Tasks);

/// <summary>status: sent, queued, scheduled, rejected or invalid; reject_reason only when rejected.</summary>
public sealed record EmailTaskResult(string Email, string Status, string? RejectReason, string TaskId);

/// <summary>GET /api/v1/email/{task_id}.</summary>
/// <param name="MessageId">The Message-ID (without angle brackets) or the ESP's id once handed over; null before.</param>
public sealed record EmailTaskResponse(
    string TaskId,
    string RequestId,
    string Email,
    string Type,
    string Status,
    string? RejectReason,
    string? Detail,
    int Attempts,
    string? MessageId,
    DateTimeOffset CreatedAt,
    DateTimeOffset? SendAt,
    DateTimeOffset? SentAt,
    DateTimeOffset? FinishedAt,
    IReadOnlyDictionary<string, JsonElement> Metadata,
    IReadOnlyList<EmailTaskEvent> Events);

/// <summary>An ESP event of a task: delivered, opened, clicked, bounced or complained.</summary>
public sealed record EmailTaskEvent(string Type, DateTimeOffset OccurredAt, string? Detail);

/// <summary>GET /api/v1/email/requests/{request_id}.</summary>
public sealed record EmailRequestResponse(string RequestId, DateTimeOffset CreatedAt, DateTimeOffset? SendAt, IReadOnlyList<EmailTaskResult> Tasks);

/// <summary>GET /api/v1/email?metadata.KEY=VALUE&amp;from=&amp;to=: newest first; pass next_cursor back as after.</summary>
public sealed record EmailTaskPage(IReadOnlyList<EmailTaskResponse> Items, string? NextCursor);

/// <summary>Task statuses: the seed's five in the answer, and what delivery and ESP events make of them later.</summary>
public static class EmailTaskStatuses
{
    public const string Queued = "queued";
    public const string Scheduled = "scheduled";
    /// <summary>Claimed by a dispatcher, not yet handed to the transport.</summary>
    public const string Claimed = "claimed";
    /// <summary>Being handed over; a dispatcher that dies here leaves it unknown (never sent twice).</summary>
    public const string Sending = "sending";
    public const string Sent = "sent";
    public const string Delivered = "delivered";
    public const string Bounced = "bounced";
    public const string Rejected = "rejected";
    public const string Invalid = "invalid";
    /// <summary>Handed over, no answer: never retried.</summary>
    public const string Unknown = "unknown";
}

/// <summary>The seed's reject_reason values used here.</summary>
public static class EmailRejectReasons
{
    public const string HardBounce = "hard-bounce";
    public const string SoftBounce = "soft-bounce";
    public const string Spam = "spam";
    public const string Unsub = "unsub";
    public const string Custom = "custom";
    public const string InvalidSender = "invalid-sender";
    public const string Invalid = "invalid";
    public const string Rule = "rule";
}
