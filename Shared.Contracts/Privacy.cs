using System.Text.Json;

namespace Newsletter.Contracts;

// Personal data of one address (GDPR Art. 15, 17, 20): Member Center's tenant routes /api/subscribers/{email}/export and
// DELETE /api/subscribers/{email}, and Send Engine's internal routes Member Center calls with its own token.

/// <summary>GET /api/subscribers/{email}/export: everything both services hold about the address for the tenant.</summary>
public sealed record SubscriberExport(
    string TenantId,
    string Email,
    DateTimeOffset ExportedAt,
    ExportedSubscriber? Subscriber,
    IReadOnlyList<ExportedSubscription> Subscriptions,
    IReadOnlyList<ExportedConsent> ConsentTrail,
    SendEngineExport SendEngine);

public sealed record ExportedSubscriber(string SubscriberId, string Email, DateTimeOffset CreatedAt, DateTimeOffset? UndeliverableAt, string? UndeliverableReason);

public sealed record ExportedSubscription(
    string ListId, string ListName, string Status, IReadOnlyDictionary<string, JsonElement> Preferences,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, DateTimeOffset? ConfirmedAt, DateTimeOffset? UnsubscribedAt);

public sealed record ExportedConsent(string ListId, string Action, string Source, string? IpAddress, string? UserAgent, DateTimeOffset OccurredAt, JsonElement? Details);

/// <summary>What Send Engine holds: its answer to POST /internal/subscribers/export.</summary>
public sealed record SendEngineExport(
    IReadOnlyList<ExportedDelivery> Deliveries,
    IReadOnlyList<ExportedEmailEvent> Events,
    IReadOnlyList<ExportedSuppression> Suppressions,
    IReadOnlyList<ExportedTransactionalTask> TransactionalTasks)
{
    public bool IsEmpty => Deliveries.Count == 0 && Events.Count == 0 && Suppressions.Count == 0 && TransactionalTasks.Count == 0;
}

/// <summary>One transactional message (seed 003 task) to the address: what was sent, with the tenant's metadata.</summary>
public sealed record ExportedTransactionalTask(string TaskId, string RequestId, string Type, string Status, string? RejectReason, string? Subject,
    IReadOnlyDictionary<string, JsonElement> Metadata, string? MessageId, string? Detail, DateTimeOffset CreatedAt, DateTimeOffset? SentAt);

public sealed record ExportedDelivery(string JobId, string ListId, string Subject, string Status, IReadOnlyDictionary<string, JsonElement> Preferences,
    string? MessageId, string? Detail, DateTimeOffset? SentAt, DateTimeOffset UpdatedAt);

public sealed record ExportedEmailEvent(string EventType, DateTimeOffset OccurredAt, string? JobId, string? MessageId, string? Link, string? Reason,
    string? BounceType, string? UserAgent, string? IpAddress);

public sealed record ExportedSuppression(string Reason, string Source, DateTimeOffset CreatedAt);

/// <summary>Member Center → Send Engine: export, erase, or lift the erasure suppression of one address of one tenant.</summary>
public sealed record SubscriberDataRequest(string? TenantId, string? Email);

/// <summary>Send Engine's answer to POST /internal/subscribers/erase: what it changed (0s when repeated).</summary>
public sealed record SendEngineErasureResult(string TenantId, int Deliveries, int Events, int Suppressions, int Reports, int TransactionalTasks);

/// <summary>POST /internal/subscribers/lift-erasure: whether an erasure suppression was removed.</summary>
public sealed record LiftErasureResult(string TenantId, bool Lifted);

/// <summary>DELETE /api/subscribers/{email}: Member Center's part is done; Send Engine's is delivered from a durable queue.</summary>
public sealed record ErasureResponse(string TenantId, string Email, string MemberCenter, string SendEngine, DateTimeOffset ErasedAt);

public static class ErasureStates
{
    public const string Erased = "erased";
    public const string Pending = "pending";
}
