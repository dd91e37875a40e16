using System.Text.Json;

namespace Newsletter.Contracts;

// Member Center's internal API, called by Send Engine with its own service client (audience member_center_internal).

/// <summary>One page of a list's confirmed recipients, keyset-paginated by subscriber id.</summary>
public sealed record RecipientPage(string TenantId, string ListId, IReadOnlyList<Recipient> Items, string? NextCursor);

public sealed record Recipient(
    string SubscriberId,
    string Email,
    IReadOnlyDictionary<string, JsonElement> Preferences,
    string UnsubscribeUrl);

/// <summary>
/// Feedback from delivery: hard bounce, complaint or an unsubscribe seen by the ESP. Detail is what the ESP said of it
/// (its bounce reason, the unsubscribe type), kept in the consent trail; at most 500 characters.
/// </summary>
public sealed record SuppressionReport(string? TenantId, string? Email, string? Reason, string? ListId, DateTimeOffset? OccurredAt, string? Detail = null);

public sealed record SuppressionReportResult(string TenantId, string Email, string Reason, int SubscriptionsChanged);

public sealed record SubscriptionStatusQuery(string? TenantId, string? ListId, IReadOnlyList<string>? Emails);

public sealed record SubscriptionStatusResult(string ListId, IReadOnlyList<string> NotSendable);

public static class SuppressionReasons
{
    public const string HardBounce = "hard_bounce";
    public const string Complaint = "complaint";
    public const string Unsubscribe = "unsubscribe";
}
