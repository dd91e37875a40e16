using System.Text.Json;

namespace Newsletter.Contracts;

// Tenant-facing newsletter API of Member Center (integration guide section 3). JSON is snake_case.

public sealed record SubscribeRequest(string? ListId, string? Email, Dictionary<string, JsonElement>? Preferences);

public sealed record SubscribeResponse(
    string ListId,
    string Email,
    string Status,
    string? ConfirmToken,
    DateTimeOffset? ConfirmTokenExpiresAt);

public sealed record ConfirmResponse(string ListId, string Email, string Status, DateTimeOffset ConfirmedAt);

public sealed record UnsubscribeTokenRequest(string? ListId, string? Email);

public sealed record UnsubscribeTokenResponse(string ListId, string Email, string UnsubscribeToken, DateTimeOffset ExpiresAt);

public sealed record UnsubscribeRequest(string? Token);

public sealed record UnsubscribeResponse(string ListId, string Email, string Status);

public sealed record PreferencesUpdateRequest(string? ListId, string? Email, Dictionary<string, JsonElement>? Preferences);

/// <summary>Preferences is null for a token without newsletter:content.read (a viewer's): they are subscriber content.</summary>
public sealed record PreferencesResponse(string ListId, string Email, string Status, IReadOnlyDictionary<string, JsonElement>? Preferences, DateTimeOffset UpdatedAt);

public static class SubscriptionStatuses
{
    public const string Pending = "pending";
    public const string Confirmed = "confirmed";
    public const string Unsubscribed = "unsubscribed";
}
