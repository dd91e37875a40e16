namespace Newsletter.Contracts.BounceMailboxes;

// Send Engine: IMAP mailboxes that receive asynchronous bounces (DSNs) and complaint reports (ARF). JSON is snake_case.

/// <summary>How the reader secures the IMAP connection.</summary>
public static class BounceMailboxTls
{
    /// <summary>TLS from the first byte (IMAPS, port 993).</summary>
    public const string SslOnConnect = "ssl_on_connect";
    /// <summary>Plain connection upgraded with STARTTLS, which is required (port 143).</summary>
    public const string StartTls = "start_tls";
    /// <summary>No TLS: only for a server on the same host or a closed network.</summary>
    public const string None = "none";

    public static IReadOnlyList<string> All { get; } = [SslOnConnect, StartTls, None];
}

/// <summary>A tenant's mailbox. <c>password</c> is stored encrypted and never returned.</summary>
public sealed record CreateBounceMailboxRequest(
    string? Host,
    int? Port,
    string? Tls,
    string? Username,
    string? Password,
    string? Folder,
    string? ProcessedFolder,
    string? UnparsableFolder,
    bool? AllowInvalidCertificate,
    bool? Enabled);

/// <summary>Fields left null are unchanged; a new password replaces the stored one.</summary>
public sealed record UpdateBounceMailboxRequest(
    string? Host,
    int? Port,
    string? Tls,
    string? Username,
    string? Password,
    string? Folder,
    string? ProcessedFolder,
    string? UnparsableFolder,
    bool? AllowInvalidCertificate,
    bool? Enabled);

/// <summary>What the reader of one mailbox has done: counters since the mailbox was registered, the last error.</summary>
public sealed record BounceMailboxStatusResponse(
    DateTimeOffset? LastConnectedAt,
    DateTimeOffset? LastCheckedAt,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    long Processed,
    long Ignored,
    long Unmatched,
    long Unparsable,
    long Retrying);

/// <param name="Verification">The last live check (POST …/{id}/verify: login and SELECT of the folder).</param>
public sealed record BounceMailboxResponse(
    string MailboxId,
    string TenantId,
    string Host,
    int Port,
    string Tls,
    string Username,
    string Folder,
    string ProcessedFolder,
    string UnparsableFolder,
    bool AllowInvalidCertificate,
    bool Enabled,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    BounceMailboxStatusResponse Status,
    Newsletter.Contracts.ProviderCredentials.VerificationResponse? Verification = null);

public sealed record BounceMailboxList(IReadOnlyList<BounceMailboxResponse> Items);

/// <summary>A message the reader could not use (moved to the unparsable folder) or is retrying, newest first.</summary>
public sealed record BounceMessageResponse(
    long Id,
    long UidValidity,
    long Uid,
    string? ReportMessageId,
    string? Subject,
    string Outcome,
    string? Reason,
    int Attempts,
    DateTimeOffset FirstSeenAt,
    DateTimeOffset UpdatedAt);

public sealed record BounceMessageList(IReadOnlyList<BounceMessageResponse> Items);

/// <summary>The platform mailbox (configuration <c>BounceMailboxes:Platform</c>): whether it is configured, and its reader's status.</summary>
public sealed record PlatformBounceMailboxResponse(bool Configured, string? Host, int? Port, string? Username, string? Folder, BounceMailboxStatusResponse Status);
