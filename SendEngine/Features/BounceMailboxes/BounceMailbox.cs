using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>
/// A tenant's IMAP mailbox that receives its bounces and complaint reports (the platform's own mailbox comes from
/// configuration, <see cref="BounceMailboxOptions.Platform"/>). The password is stored encrypted
/// (<see cref="BounceMailboxSecretProtector"/>): the reader needs it in clear to log in.
/// </summary>
public sealed class BounceMailbox
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Host { get; set; }
    public int Port { get; set; }
    /// <summary><see cref="Newsletter.Contracts.BounceMailboxes.BounceMailboxTls"/>.</summary>
    public required string Tls { get; set; }
    public required string Username { get; set; }
    public required byte[] Password { get; set; }
    public required string Folder { get; set; }
    public required string ProcessedFolder { get; set; }
    public required string UnparsableFolder { get; set; }
    /// <summary>Development only: accept a self-signed or otherwise invalid server certificate.</summary>
    public bool AllowInvalidCertificate { get; set; }
    public bool Enabled { get; set; } = true;
    /// <summary>The last live check (POST …/{id}/verify): <see cref="Newsletter.Contracts.ProviderCredentials.VerificationStatuses"/>.</summary>
    public string CheckStatus { get; set; } = Newsletter.Contracts.ProviderCredentials.VerificationStatuses.Unverified;
    public DateTimeOffset? CheckedAt { get; set; }
    /// <summary>What the server answered at that check, or why it failed (no secrets).</summary>
    public string? CheckDetail { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>A change restarts the mailbox's reader (the supervisor compares it).</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// What the reader of one mailbox (key: "platform" or the tenant mailbox id, 32 hex) has done, across processes and
/// restarts: counters and the last connection error, shown by the APIs.
/// </summary>
public sealed class BounceMailboxStatus
{
    public required string MailboxKey { get; set; }
    public Guid? TenantId { get; set; }
    public DateTimeOffset? LastConnectedAt { get; set; }
    public DateTimeOffset? LastCheckedAt { get; set; }
    public string? LastError { get; set; }
    public DateTimeOffset? LastErrorAt { get; set; }
    public long Processed { get; set; }
    public long Ignored { get; set; }
    public long Unmatched { get; set; }
    public long Unparsable { get; set; }
}

/// <summary>
/// A message the reader could not finish: <c>retrying</c> (its events could not be stored; it stays in the folder and
/// is tried again, <see cref="Attempts"/> counts) or <c>unparsable</c> (moved to the unparsable folder, with the reason).
/// Processed messages leave no row, only a count.
/// </summary>
public sealed class BounceMessage
{
    public long Id { get; set; }
    public required string MailboxKey { get; set; }
    public Guid? TenantId { get; set; }
    public long UidValidity { get; set; }
    public long Uid { get; set; }
    public string? ReportMessageId { get; set; }
    public string? Subject { get; set; }
    public required string Outcome { get; set; }
    public string? Reason { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset FirstSeenAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public static class BounceMessageOutcomes
{
    public const string Retrying = "retrying";
    public const string Unparsable = "unparsable";
}

internal sealed class BounceMailboxConfiguration : IEntityTypeConfiguration<BounceMailbox>
{
    public void Configure(EntityTypeBuilder<BounceMailbox> b)
    {
        b.ToTable("bounce_mailboxes");
        b.Property(m => m.Host).HasMaxLength(253);
        b.Property(m => m.Tls).HasMaxLength(16);
        b.Property(m => m.Username).HasMaxLength(320);
        b.Property(m => m.Folder).HasMaxLength(200);
        b.Property(m => m.ProcessedFolder).HasMaxLength(200);
        b.Property(m => m.UnparsableFolder).HasMaxLength(200);
        b.Property(m => m.CheckStatus).HasMaxLength(16).HasDefaultValue(Newsletter.Contracts.ProviderCredentials.VerificationStatuses.Unverified);
        b.Property(m => m.CheckDetail).HasMaxLength(2000);
        b.HasIndex(m => m.TenantId);
    }
}

internal sealed class BounceMailboxStatusConfiguration : IEntityTypeConfiguration<BounceMailboxStatus>
{
    public void Configure(EntityTypeBuilder<BounceMailboxStatus> b)
    {
        b.ToTable("bounce_mailbox_status");
        b.HasKey(s => s.MailboxKey);
        b.Property(s => s.MailboxKey).HasMaxLength(40);
        b.Property(s => s.LastError).HasMaxLength(1000);
    }
}

internal sealed class BounceMessageConfiguration : IEntityTypeConfiguration<BounceMessage>
{
    public void Configure(EntityTypeBuilder<BounceMessage> b)
    {
        b.ToTable("bounce_messages");
        b.Property(m => m.Id).UseIdentityAlwaysColumn();
        b.Property(m => m.MailboxKey).HasMaxLength(40);
        b.Property(m => m.ReportMessageId).HasMaxLength(500);
        b.Property(m => m.Subject).HasMaxLength(500);
        b.Property(m => m.Outcome).HasMaxLength(16);
        b.Property(m => m.Reason).HasMaxLength(1000);
        b.HasIndex(m => new { m.MailboxKey, m.UidValidity, m.Uid }).IsUnique();
        b.HasIndex(m => new { m.MailboxKey, m.Id });
    }
}
