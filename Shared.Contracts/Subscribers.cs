using System.Text.Json;

namespace Newsletter.Contracts;

// Member Center's tenant routes for the console's "Lists and subscribers": search, detail, add, unsubscribe, CSV import
// and export. Preferences and consent details are null without newsletter:content.read.

/// <summary>GET /api/subscribers: one page of the tenant's subscribers in address order.</summary>
public sealed record SubscriberPage(IReadOnlyList<SubscriberSummary> Items, string? NextCursor);

public sealed record SubscriberSummary(string SubscriberId, string Email, DateTimeOffset CreatedAt, DateTimeOffset? UndeliverableAt,
    IReadOnlyList<SubscriberListStatus> Subscriptions);

public sealed record SubscriberListStatus(string ListId, string Status);

/// <summary>GET /api/lists/{list_id}/subscribers: one page of a list's subscriptions, newest subscriber first.</summary>
public sealed record ListSubscriberPage(string ListId, IReadOnlyList<ListSubscriber> Items, string? NextCursor);

public sealed record ListSubscriber(string SubscriberId, string Email, string Status, DateTimeOffset SubscribedAt, DateTimeOffset UpdatedAt,
    DateTimeOffset? ConfirmedAt, DateTimeOffset? UnsubscribedAt, IReadOnlyDictionary<string, JsonElement>? Preferences);

/// <summary>GET /api/subscribers/{email}: the subscriber, its subscriptions and its consent trail, newest first.</summary>
public sealed record SubscriberDetail(string SubscriberId, string Email, DateTimeOffset CreatedAt, DateTimeOffset? UndeliverableAt,
    string? UndeliverableReason, IReadOnlyList<SubscriberSubscription> Subscriptions, IReadOnlyList<ConsentEntry> ConsentTrail, bool ConsentTrailTruncated);

public sealed record SubscriberSubscription(string ListId, string ListName, string Status, DateTimeOffset SubscribedAt, DateTimeOffset UpdatedAt,
    DateTimeOffset? ConfirmedAt, DateTimeOffset? UnsubscribedAt, IReadOnlyDictionary<string, JsonElement>? Preferences);

/// <summary>One consent record: what happened, when, how (source), the tenant's note and the address it came from.</summary>
public sealed record ConsentEntry(string ListId, string Action, string Source, string? Note, string? IpAddress, DateTimeOffset OccurredAt, JsonElement? Details);

/// <summary>POST /api/lists/{list_id}/subscribers. Mode confirmed requires ConsentNote (the tenant's record of the consent).</summary>
public sealed record AddSubscriberRequest(string? Email, Dictionary<string, JsonElement>? Preferences, string? Mode, string? ConsentNote);

/// <summary>Outcome is created, updated or already_confirmed (nothing changed).</summary>
public sealed record AddSubscriberResponse(string ListId, string Email, string Status, string Outcome);

public static class SubscriberAddModes
{
    /// <summary>The tenant holds the reader's consent: confirmed at once, no mail.</summary>
    public const string Confirmed = "confirmed";
    /// <summary>Pending until the reader clicks the confirmation mail.</summary>
    public const string DoubleOptIn = "double_opt_in";
}

public static class SubscribeOutcomes
{
    public const string Created = "created";
    public const string Updated = "updated";
    public const string AlreadyConfirmed = "already_confirmed";
}

/// <summary>
/// GET /api/lists/{list_id}/imports/{import_id}. Processed counts lines done (invalid ones at upload); when completed,
/// processed = total_rows = created + updated + skipped + invalid. InvalidLines holds the first 100.
/// </summary>
public sealed record SubscriberImportResponse(string ImportId, string ListId, string Mode, string Status, int TotalRows, int Processed, int Created,
    int Updated, int Skipped, int Invalid, IReadOnlyList<ImportLineError> InvalidLines, DateTimeOffset CreatedAt, DateTimeOffset? CompletedAt);

/// <summary>An invalid line of an import: its line number, the column at fault when one is (a preference field), and why.</summary>
public sealed record ImportLineError(int Line, string Reason, string? Field = null);

public static class ImportStatuses
{
    public const string Queued = "queued";
    public const string Processing = "processing";
    public const string Completed = "completed";
}
