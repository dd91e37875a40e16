namespace Newsletter.Contracts;

// Send Engine: ESP events (Tencent SES webhook) as tenants read them. JSON is snake_case.

/// <summary>Per-job counters from ESP events, in GET /api/send-jobs/{id} as "events".</summary>
public sealed record SendJobEventCounts(
    int Delivered,
    int OpenedUnique,
    int OpenedTotal,
    int ClickedUnique,
    int ClickedTotal,
    int Bounced,
    int SoftBounced,
    int Deferred,
    int Rejected,
    int Complained,
    int Unsubscribed);

public sealed record EmailEventResponse(
    long Id,
    string EventType,
    string RawEventType,
    string Email,
    string MessageId,
    string? JobId,
    DateTimeOffset OccurredAt,
    DateTimeOffset ReceivedAt,
    string? Link,
    string? Reason,
    string? BounceType,
    string? Outcome,
    DateTimeOffset? ProcessedAt);

public sealed record EmailEventPage(IReadOnlyList<EmailEventResponse> Items, string? NextCursor);

/// <summary>GET /api/email-addresses/{email}/statistics: one address of the tenant.</summary>
public sealed record EmailStatisticsResponse(
    string Email,
    int TotalSent,
    int TotalDelivered,
    int TotalOpened,
    int TotalClicked,
    int TotalBounced,
    int TotalSoftBounced,
    int TotalComplaints,
    int TotalUnsubscribes,
    DateTimeOffset? LastActivity);
