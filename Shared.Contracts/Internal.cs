using System.Text.Json;

namespace Newsletter.Contracts;

// Member Center's internal API, called by Send Engine with its own service client (audience member_center_internal).

/// <summary>
/// One page of a list's confirmed recipients, keyset-paginated by subscriber id. The first page (no after) also carries
/// ChangesCursor: the change feed's position taken before the page was read, to pass as after to the changes route.
/// </summary>
public sealed record RecipientPage(string TenantId, string ListId, IReadOnlyList<Recipient> Items, string? NextCursor, string? ChangesCursor = null);

/// <summary>GET /internal/lists/{list_id}/changes: subscriptions that stopped being sendable, in commit order.</summary>
public sealed record SubscriptionChangesPage(string TenantId, string ListId, IReadOnlyList<SubscriptionChangeItem> Items, string NextCursor);

/// <summary>Change is unsubscribed, undeliverable or erased; Email is null once the subscriber is erased.</summary>
public sealed record SubscriptionChangeItem(string SubscriberId, string? Email, string Change, DateTimeOffset OccurredAt);

/// <summary>A confirmed subscriber; Send Engine mints its unsubscribe link from the list's link key (no URL on the wire).</summary>
public sealed record Recipient(
    string SubscriberId,
    string Email,
    IReadOnlyDictionary<string, JsonElement> Preferences);

/// <summary>
/// GET /internal/lists/{list_id}?tenant_id=: the list exists and is the tenant's. PostalAddress is the tenant's branding
/// postal address (null when it has none): bulk mail carries it in its footer (CAN-SPAM).
/// </summary>
public sealed record InternalListResponse(string TenantId, string ListId, string? PostalAddress = null);

/// <summary>
/// GET /internal/tenants/{tenant_id}/mail-footer: what a tenant's bulk mail carries in its footer (PostalAddress null:
/// not set). Footer: the whole branded footer (no list: default language en).
/// </summary>
public sealed record InternalMailFooterResponse(string TenantId, string? PostalAddress, MailFooter? Footer = null);

/// <summary>
/// The branded footer of a tenant's bulk mail, from Member Center's branding and reader strings: FooterText and
/// PostalAddress (null: not set), the list's DefaultLanguage (a recipient without a usable <c>lang</c> preference gets
/// it) and the unsubscribe wording in each reader language (keyed en, zh-TW, zh-CN, ja, ko). Plain text: the sender
/// encodes it.
/// </summary>
public sealed record MailFooter(string? FooterText, string? PostalAddress, string DefaultLanguage,
    IReadOnlyDictionary<string, MailFooterWording> Wording);

/// <summary>Unsubscribe: the HTML link's text; UnsubscribeText: the text part's line, with {link} where the URL goes.</summary>
public sealed record MailFooterWording(string Unsubscribe, string UnsubscribeText);

/// <summary>
/// POST /internal/lists/{list_id}/link-key. Without KeyId/IssuedAt: the current key, issued now. With both: the same
/// derived key again (a restarted Send Engine re-deriving a job's key). IssuedAt is unix seconds.
/// </summary>
public sealed record LinkKeyRequest(string? TenantId, string? KeyId = null, long? IssuedAt = null);

/// <summary>
/// A derived link key: K_link = HMAC-SHA256(K_root[KeyId], "unsubscribe-link|{tenant_id}|{list_id}|{issued_at}"),
/// base64url (no padding) in Key. A link is UnsubscribeUrlPrefix + "u1.{key_id}.{issued_at}.{list_id:N}.{subscriber_id:N}.{mac}"
/// (docs/internal-api.md). Links minted with it are valid until ExpiresAt (IssuedAt + the unsubscribe token lifetime).
/// PostalAddress: the tenant's branding postal address now (null: none); Footer: the list's whole branded footer now.
/// A job run reads both with its key, for the footer of every message of the run.
/// </summary>
public sealed record LinkKeyResponse(string KeyId, long IssuedAt, string Key, string UnsubscribeUrlPrefix, string ListId, DateTimeOffset ExpiresAt,
    string? PostalAddress = null, MailFooter? Footer = null);

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
