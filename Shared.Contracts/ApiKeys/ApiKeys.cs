namespace Newsletter.Contracts.ApiKeys;

// Applications and their X-Pigeon-Api-Key keys (seed 003 chapter 2), owned by Member Center. The same bodies serve the
// admin routes (/admin/tenants/{tenant_id}/applications...) and the tenant routes (/api/applications...).

public sealed record CreateApplicationRequest(string? Name);

/// <summary>An application; <c>channels</c> is always ["email"], the one channel there is.</summary>
public sealed record ApplicationResponse(string ApplicationId, string TenantId, string Name, IReadOnlyList<string> Channels, DateTimeOffset CreatedAt);

/// <summary>Give <c>expires_at</c> (a date) or <c>expires_in_days</c> (relative), or neither for a key without expiry.</summary>
public sealed record CreateApiKeyRequest(string? Name, DateTimeOffset? ExpiresAt = null, int? ExpiresInDays = null);

/// <summary>
/// A key as listed: never the key itself, only its first characters (<c>prefix</c>) to tell keys apart.
/// <c>status</c> is active, expired or deleted (deleted keys are not listed).
/// </summary>
public sealed record ApiKeyResponse(
    string KeyId, string ApplicationId, string Name, string Prefix, string Status,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt);

/// <summary>Returned once, at creation or rotation: <c>api_key</c> is stored only as a hash.</summary>
public sealed record ApiKeySecretResponse(
    string KeyId, string ApplicationId, string Name, string Prefix, string ApiKey,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt);

/// <summary>
/// Rotation: a new key, and the old one kept working for <c>overlap_hours</c> (default ApiKeys:RotationOverlap). The new
/// key's expiry is <c>expires_at</c> or <c>expires_in_days</c>, else the old key's lifetime again from now.
/// </summary>
public sealed record RotateApiKeyRequest(DateTimeOffset? ExpiresAt = null, int? ExpiresInDays = null, int? OverlapHours = null);

public sealed record ApiKeyRotationResponse(ApiKeySecretResponse Key, ApiKeyResponse Previous);

public static class ApiKeyStatuses
{
    public const string Active = "active";
    public const string Expired = "expired";
    public const string Deleted = "deleted";
    /// <summary>Only in the internal verification answer: no key has this hash.</summary>
    public const string Unknown = "unknown";
}

/// <summary>
/// POST /internal/api-keys/verify (Send Engine's service token). <c>key_hash</c> is the lowercase hex SHA-256 of the
/// key's UTF-8 bytes, so the key itself never travels between the services or reaches a log.
/// </summary>
public sealed record ApiKeyVerificationRequest(string? KeyHash);

/// <summary>Status active (with tenant, application, key and expiry), expired, deleted or unknown.</summary>
public sealed record ApiKeyVerificationResponse(
    string Status, string? TenantId = null, string? ApplicationId = null, string? KeyId = null, DateTimeOffset? ExpiresAt = null);

/// <summary>What an API key looks like: <c>pgn_</c> and 43 base64url characters (32 random bytes, 256 bits).</summary>
public static class ApiKeyFormat
{
    public const string Prefix = "pgn_";
    public const int RandomBytes = 32;
    public const int Length = 47;
    /// <summary>How much of a key is kept readable to tell keys apart in listings (prefix and 8 characters).</summary>
    public const int DisplayLength = 12;
}

/// <summary>GET /api/v1/api-key on Send Engine: what the X-Pigeon-Api-Key of the request is (a check tenants can call).</summary>
public sealed record ApiKeyInfoResponse(string TenantId, string ApplicationId, string KeyId, DateTimeOffset? ExpiresAt);
