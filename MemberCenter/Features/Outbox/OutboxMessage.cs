using MemberCenter.Features.People;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Outbox;

/// <summary>
/// A mail to send, written in the same transaction as what it is about (a subscription, an account, an invitation) so
/// a crash or a down SMTP server loses nothing. It holds no token: the dispatcher mints the link's token when it sends.
/// </summary>
public sealed class OutboxMessage
{
    public long Id { get; set; }
    /// <summary>What the mail is: see <see cref="OutboxKinds"/>; it decides which of the ids below is set.</summary>
    public string Kind { get; set; } = OutboxKinds.SubscriptionConfirmation;
    public Guid? SubscriptionId { get; set; }
    /// <summary>The person of an account mail (e-mail confirmation, password reset).</summary>
    public Guid? UserId { get; set; }
    public Guid? InvitationId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Due time; while a dispatcher works on the row it is pushed forward as a lease.</summary>
    public DateTimeOffset NextAttemptAt { get; set; }
    /// <summary>Claims of the row, less those that ended in an SMTP outage (see OutboxOptions.MaxAttempts).</summary>
    public int Attempts { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    /// <summary>Set when the row stops being retried: sent, obsolete, or out of attempts.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
    public string? LastError { get; set; }
    /// <summary>
    /// A confirmation mail's language from the subscribe request's Accept-Language (a reader language; null: none
    /// usable). The subscriber's <c>lang</c> preference comes first, the list's default after it.
    /// </summary>
    public string? Language { get; set; }
}

internal sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> b)
    {
        b.ToTable("outbox_messages");
        b.Property(m => m.LastError).HasMaxLength(1000);
        b.Property(m => m.Language).HasMaxLength(16);
        b.HasIndex(m => m.NextAttemptAt).HasFilter("completed_at IS NULL").HasDatabaseName("ix_outbox_messages_due");
        b.HasIndex(m => m.CompletedAt).HasFilter("completed_at IS NOT NULL").HasDatabaseName("ix_outbox_messages_completed"); // retention sweep
        b.Property(m => m.Kind).HasMaxLength(40).HasDefaultValue(OutboxKinds.SubscriptionConfirmation);
        b.HasOne<Subscription>().WithMany().HasForeignKey(m => m.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<Person>().WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<Invitation>().WithMany().HasForeignKey(m => m.InvitationId).OnDelete(DeleteBehavior.Cascade);
    }
}

public static class OutboxKinds
{
    /// <summary>The double opt-in mail of a pending subscription.</summary>
    public const string SubscriptionConfirmation = "subscription_confirmation";
    /// <summary>Confirm a person's e-mail address (account created by an operator).</summary>
    public const string AccountEmailConfirmation = "account_email_confirmation";
    public const string PasswordReset = "password_reset";
    public const string Invitation = "invitation";
}
