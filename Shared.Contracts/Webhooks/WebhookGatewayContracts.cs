namespace Newsletter.Contracts.Webhooks;

// Send Engine: the webhook gateway (inbound ESP callbacks as received, per tenant). JSON is snake_case.

/// <summary>How an inbound request was verified (the <c>verification</c> field and filter).</summary>
public static class GatewayVerifications
{
    public const string Ok = "ok";
    public const string BadSignature = "bad_signature";
    public const string StaleTimestamp = "stale_timestamp";
    public const string MissingSignature = "missing_signature";
    public const string BadToken = "bad_token";
    public const string MissingToken = "missing_token";
    /// <summary>Authentic, but the body could not be parsed (malformed JSON, invalid event).</summary>
    public const string Invalid = "invalid";
    public const string TooLarge = "too_large";
    /// <summary>Received while verification is off (development only).</summary>
    public const string Unverified = "unverified";
    /// <summary>Read from a bounce or feedback mailbox over IMAP (source imap): the mailbox's login is the check.</summary>
    public const string Mailbox = "mailbox";

    public static readonly IReadOnlyList<string> All =
        [Ok, BadSignature, StaleTimestamp, MissingSignature, BadToken, MissingToken, Invalid, TooLarge, Unverified, Mailbox];
}

/// <summary>What an entry did, summed over its events (the <c>result</c> field).</summary>
public static class GatewayResults
{
    /// <summary>Refused before anything was stored (verification or parsing failed).</summary>
    public const string Rejected = "rejected";
    /// <summary>Stored, not processed yet.</summary>
    public const string Pending = "pending";
    /// <summary>Ingestion was off for the tenant: stored, not applied (see the entry's apply action).</summary>
    public const string Held = "held";
    public const string Applied = "applied";
    /// <summary>Every event had been received before.</summary>
    public const string Duplicate = "duplicate";
    /// <summary>Processed without effect (unknown message, unknown type, recipient mismatch, a test event).</summary>
    public const string NoEffect = "no_effect";
}

/// <summary>One event of an entry and what processing it changed.</summary>
/// <param name="Outcome">applied, applied_as_hard_bounce, held, test, unknown_message, recipient_mismatch, ignored,
/// failed, or null while pending.</param>
/// <param name="Effect">What changed, e.g. "recipient → bounced; suppression added (hard_bounce)".</param>
public sealed record GatewayEventChange(long EventId, string EventType, string Email, string MessageId, string? Outcome, string? Effect);

/// <summary>A log entry as listed and streamed.</summary>
public sealed record GatewayEntrySummary(
    string EntryId,
    string? TenantId,
    DateTimeOffset ReceivedAt,
    string Source,
    string Method,
    string Path,
    string Verification,
    int StatusCode,
    int Events,
    string Result,
    IReadOnlyList<string> EventTypes);

/// <summary>
/// A log entry as the live view streams it (the <c>data</c> of an <c>event: entry</c>): what the log's table shows, and no
/// more, because every watcher of a scope receives every entry of it. Not repeated: the tenant (the stream is one
/// tenant's log, or the platform's), the method and path (the entry's detail has them, with headers, body and what each
/// event changed, from <c>GET …/events/{entry_id}</c>).
/// </summary>
public sealed record GatewayStreamEntry(
    string EntryId,
    DateTimeOffset ReceivedAt,
    string Source,
    string Verification,
    int StatusCode,
    int Events,
    string Result,
    IReadOnlyList<string> EventTypes);

/// <summary>A log entry with the request as received (secrets cut to a prefix, body capped) and its changes.</summary>
public sealed record GatewayEntryResponse(
    GatewayEntrySummary Entry,
    IReadOnlyDictionary<string, string> Headers,
    string Body,
    bool BodyTruncated,
    int Duplicates,
    IReadOnlyList<GatewayEventChange> Changes);

/// <summary>A page, newest first; pass <c>next_before</c> as <c>before</c> for the next one.</summary>
public sealed record GatewayEntryPage(IReadOnlyList<GatewayEntrySummary> Items, string? NextBefore);

public sealed record GatewayIngestion(bool Enabled, DateTimeOffset? UpdatedAt);

public sealed record SetGatewayIngestionRequest(bool? Enabled);

/// <summary>POST …/test-events: one of <see cref="GatewayTestEventTypes.All"/>.</summary>
public sealed record GatewayTestEventRequest(string? Type);

public sealed record GatewayHttpRequest(string Method, string Url, IReadOnlyDictionary<string, string> Headers, string Body);

public sealed record GatewayHttpResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body);

/// <param name="EntryId">The log entry the request made (null when the answer did not name one).</param>
/// <param name="Outcome">The processor's outcome when it came within the wait, else null (still pending).</param>
public sealed record GatewayTestEventResponse(string Type, GatewayHttpRequest Request, GatewayHttpResponse Response, string? EntryId, string? Outcome);

public static class GatewayTestEventTypes
{
    public const string Delivered = "delivered";
    public const string HardBounce = "hard_bounce";
    public const string SoftBounce = "soft_bounce";
    public const string Complaint = "complaint";
    public const string Rejected = "rejected";
    public const string Open = "open";
    public const string Click = "click";
    public const string Unsubscribe = "unsubscribe";

    public static readonly IReadOnlyList<string> All = [Delivered, HardBounce, SoftBounce, Complaint, Rejected, Open, Click, Unsubscribe];
}
