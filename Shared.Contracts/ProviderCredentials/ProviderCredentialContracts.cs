namespace Newsletter.Contracts.ProviderCredentials;

// Send Engine: a tenant's own delivery providers (SMTP relays, Tencent SES accounts), created and then verified live.
// JSON is snake_case. Secrets (password, secret_key) are write-only: stored encrypted, never returned.

public static class ProviderKinds
{
    public const string Smtp = "smtp";
    public const string Tencent = "tencent";

    public static IReadOnlyList<string> All { get; } = [Smtp, Tencent];
}

/// <summary>How Send Engine secures the connection to a tenant's SMTP relay.</summary>
public static class SmtpTlsModes
{
    /// <summary>Plain SMTP: only where private networks are allowed (a relay next to Send Engine).</summary>
    public const string None = "none";
    /// <summary>Plain connection upgraded with STARTTLS, which is required (port 587 or 25).</summary>
    public const string StartTls = "starttls";
    /// <summary>TLS from the first byte (SMTPS, port 465).</summary>
    public const string Tls = "tls";

    public static IReadOnlyList<string> All { get; } = [None, StartTls, Tls];
}

/// <summary>The result of the last live check of a credential or mailbox.</summary>
public static class VerificationStatuses
{
    public const string Unverified = "unverified";
    public const string Verified = "verified";
    public const string Failed = "failed";
}

/// <summary>
/// A new credential. smtp: host, port (default 587 for starttls, 465 for tls, 25 for none), tls (default starttls),
/// username and password (both or neither). tencent: secret_id, secret_key, region (default ap-guangzhou) and
/// endpoint (only where Send Engine allows an endpoint override: tests). <c>active</c>: the tenant's mail goes through
/// it once it is verified (at most one active credential per tenant; activating one deactivates the others).
/// </summary>
public sealed record CreateProviderCredentialRequest(
    string? Kind,
    string? Name,
    string? Host = null,
    int? Port = null,
    string? Tls = null,
    string? Username = null,
    string? Password = null,
    string? SecretId = null,
    string? SecretKey = null,
    string? Region = null,
    string? Endpoint = null,
    bool? Active = null);

/// <summary>Fields left null are unchanged. A new secret (or username / secret id) makes the credential unverified again.</summary>
public sealed record UpdateProviderCredentialRequest(
    string? Name = null,
    bool? Active = null,
    string? Username = null,
    string? Password = null,
    string? SecretId = null,
    string? SecretKey = null);

/// <param name="Status"><see cref="VerificationStatuses"/>.</param>
/// <param name="Detail">What the server answered (reply text, step by step), or why the check failed; never a secret.</param>
public sealed record VerificationResponse(string Status, DateTimeOffset? CheckedAt, string? Detail);

/// <param name="InUse">Active and verified: the tenant's send jobs and transactional mail go through it now.</param>
/// <param name="SecretId">Tencent: the SecretId, shortened to its first and last four characters.</param>
public sealed record ProviderCredentialResponse(
    string CredentialId,
    string TenantId,
    string Kind,
    string Name,
    string? Host,
    int? Port,
    string? Tls,
    string? Username,
    string? SecretId,
    string? Region,
    string? Endpoint,
    bool Active,
    bool InUse,
    VerificationResponse Verification,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

public sealed record ProviderCredentialList(IReadOnlyList<ProviderCredentialResponse> Items);
