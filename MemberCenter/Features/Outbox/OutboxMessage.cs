using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Outbox;

/// <summary>
/// A confirmation mail to send, written in the same transaction as the subscription so a crash or a down SMTP
/// server loses nothing. It holds no token: the dispatcher mints the link's token when it sends.
/// </summary>
public sealed class OutboxMessage
{
    public long Id { get; set; }
    public Guid SubscriptionId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Due time; while a dispatcher works on the row it is pushed forward as a lease.</summary>
    public DateTimeOffset NextAttemptAt { get; set; }
    /// <summary>Claims of the row, less those that ended in an SMTP outage (see OutboxOptions.MaxAttempts).</summary>
    public int Attempts { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    /// <summary>Set when the row stops being retried: sent, obsolete, or out of attempts.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
    public string? LastError { get; set; }
}

internal sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> b)
    {
        b.ToTable("outbox_messages");
        b.Property(m => m.LastError).HasMaxLength(1000);
        b.HasIndex(m => m.NextAttemptAt).HasFilter("completed_at IS NULL").HasDatabaseName("ix_outbox_messages_due");
        b.HasIndex(m => m.CompletedAt).HasFilter("completed_at IS NOT NULL").HasDatabaseName("ix_outbox_messages_completed"); // retention sweep
        b.HasOne<Subscription>().WithMany().HasForeignKey(m => m.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
    }
}
