using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// One ESP event as received (raw payload kept) plus its parsed fields. Written by the webhook before it answers 200,
/// processed afterwards by <see cref="EmailEventProcessor"/> (processed_at set in the same transaction as the effects).
/// </summary>
public sealed class EmailEvent
{
    public long Id { get; set; }
    /// <summary>SHA-256 (hex) of message id, event type, timestamp, link and email: a repeated callback changes nothing.</summary>
    public required string IdempotencyKey { get; set; }
    /// <summary>spec (eventType…) or tencent (event/bulkId…).</summary>
    public required string Format { get; set; }
    /// <summary>The normalised type (<see cref="EmailEventTypes"/>); unknown types are stored as "unknown".</summary>
    public required string EventType { get; set; }
    /// <summary>The type as the ESP spelled it.</summary>
    public required string RawEventType { get; set; }
    /// <summary>The ESP message id (Tencent: bulkId, the SendEmail MessageId; spec: messageId).</summary>
    public required string MessageId { get; set; }
    /// <summary>Tencent's messageId field: the RFC 5322 Message-ID, when sent.</summary>
    public string? SmtpMessageId { get; set; }
    public required string Email { get; set; }
    public DateTimeOffset OccurredAt { get; set; }
    public string? Link { get; set; }
    public string? Reason { get; set; }
    public string? BounceType { get; set; }
    public string? UserAgent { get; set; }
    public string? IpAddress { get; set; }
    /// <summary>The event as received (one JSON object, stored as jsonb); the gateway log's detail shows it as the body.</summary>
    public required string Payload { get; set; }
    public DateTimeOffset ReceivedAt { get; set; }
    /// <summary>The webhook gateway's log entry of the request that brought it (null for IMAP-derived events).</summary>
    public Guid? GatewayEntryId { get; set; }
    /// <summary>Set by the gateway's apply action: processed even while the tenant's ingestion is off.</summary>
    public bool ForceApply { get; set; }

    // Filled in by the processor.
    public Guid? TenantId { get; set; }
    public Guid? JobId { get; set; }
    public long? RecipientId { get; set; }
    public DateTimeOffset? ProcessedAt { get; set; }
    /// <summary>applied, unknown_message, ignored or failed (see docs/tencent-ses.md).</summary>
    public string? Outcome { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset? NextAttemptAt { get; set; }
    public string? LastError { get; set; }
    /// <summary>What applying it changed, for the gateway log (e.g. "recipient → bounced; suppression added (hard_bounce)").</summary>
    public string? Effect { get; set; }
}

internal sealed class EmailEventConfiguration : IEntityTypeConfiguration<EmailEvent>
{
    public void Configure(EntityTypeBuilder<EmailEvent> b)
    {
        b.ToTable("email_events");
        b.Property(e => e.Id).UseIdentityAlwaysColumn();
        b.Property(e => e.IdempotencyKey).HasMaxLength(64);
        b.Property(e => e.Format).HasMaxLength(16);
        b.Property(e => e.EventType).HasMaxLength(32);
        b.Property(e => e.RawEventType).HasMaxLength(64);
        b.Property(e => e.MessageId).HasMaxLength(255);
        b.Property(e => e.SmtpMessageId).HasMaxLength(998);
        b.Property(e => e.Email).HasMaxLength(320);
        b.Property(e => e.Link).HasMaxLength(4096);
        b.Property(e => e.Reason).HasMaxLength(2000);
        b.Property(e => e.BounceType).HasMaxLength(64);
        b.Property(e => e.UserAgent).HasMaxLength(1000);
        b.Property(e => e.IpAddress).HasMaxLength(64);
        b.Property(e => e.Payload).HasColumnType("jsonb");
        b.Property(e => e.Outcome).HasMaxLength(32);
        b.Property(e => e.LastError).HasMaxLength(2000);
        b.Property(e => e.Effect).HasMaxLength(500);
        b.Property(e => e.ForceApply).HasDefaultValue(false);
        // No index on gateway_entry_id: an entry names its events' id range (GatewayEntry.FirstEventId), so reading them
        // uses the primary key and a webhook insert pays for no extra index entry.
        b.HasIndex(e => e.IdempotencyKey).IsUnique();
        // The processor's queue: only unprocessed rows are in this index.
        b.HasIndex(e => e.Id).HasDatabaseName("ix_email_events_unprocessed").HasFilter("processed_at IS NULL");
        b.HasIndex(e => new { e.JobId, e.EventType }).HasFilter("job_id IS NOT NULL");
        b.HasIndex(e => new { e.TenantId, e.Email, e.OccurredAt }).HasFilter("tenant_id IS NOT NULL");
        b.HasIndex(e => new { e.JobId, e.Id }).HasDatabaseName("ix_email_events_job_id_id").HasFilter("job_id IS NOT NULL");
    }
}

/// <summary>
/// Per address and tenant (spec 001's email_statistics); "sent" is counted from the deliveries on read, plus
/// <see cref="TotalSentArchived"/> for deliveries whose rows retention has deleted.
/// </summary>
public sealed class EmailStatistic
{
    public Guid TenantId { get; set; }
    /// <summary>Lower-cased, trimmed.</summary>
    public required string Email { get; set; }
    public int TotalDelivered { get; set; }
    public int TotalOpened { get; set; }
    public int TotalClicked { get; set; }
    public int TotalBounced { get; set; }
    public int TotalSoftBounced { get; set; }
    public int TotalComplaints { get; set; }
    public int TotalUnsubscribes { get; set; }
    /// <summary>Messages sent to the address whose recipient rows the retention sweep deleted (their jobs were archived).</summary>
    public int TotalSentArchived { get; set; }
    public DateTimeOffset? LastActivity { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

internal sealed class EmailStatisticConfiguration : IEntityTypeConfiguration<EmailStatistic>
{
    public void Configure(EntityTypeBuilder<EmailStatistic> b)
    {
        b.ToTable("email_statistics");
        b.HasKey(s => new { s.TenantId, s.Email });
        b.Property(s => s.Email).HasMaxLength(320);
        // The event processor's upsert does not name it.
        b.Property(s => s.TotalSentArchived).HasDefaultValue(0);
    }
}

/// <summary>Normalised event types shared by both payload formats.</summary>
public static class EmailEventTypes
{
    public const string Processed = "processed";
    public const string Delivered = "delivered";
    public const string Deferred = "deferred";
    /// <summary>Rejected by the ESP before sending (spec "reject", Tencent "dropped").</summary>
    public const string Rejected = "rejected";
    public const string HardBounce = "hard_bounce";
    public const string SoftBounce = "soft_bounce";
    public const string Open = "open";
    public const string Click = "click";
    public const string SpamReport = "spamreport";
    public const string Unsubscribe = "unsubscribe";
    public const string Unknown = "unknown";
}
