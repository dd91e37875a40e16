using MemberCenter.Features.Lists;
using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Subscriptions;

/// <summary>An address known to one tenant. The same address under two tenants is two subscribers.</summary>
public sealed class Subscriber
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    /// <summary>As normalised: trimmed, domain lower-cased and IDN-encoded, local part as given.</summary>
    public required string Email { get; set; }
    /// <summary>Lower-cased whole address: what makes two addresses the same subscriber.</summary>
    public required string EmailKey { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Set by a hard bounce: no list of the tenant mails this address until it re-subscribes.</summary>
    public DateTimeOffset? UndeliverableAt { get; set; }
    public string? UndeliverableReason { get; set; }
}

public enum SubscriptionStatus { Pending = 0, Confirmed = 1, Unsubscribed = 2 }

public sealed class Subscription
{
    public Guid Id { get; set; }
    public Guid ListId { get; set; }
    public Guid SubscriberId { get; set; }
    public SubscriptionStatus Status { get; set; }
    /// <summary>Tenant-defined preferences (e.g. {"lang":"zh-TW"}), a JSON object.</summary>
    public string Preferences { get; set; } = "{}";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? ConfirmedAt { get; set; }
    public DateTimeOffset? UnsubscribedAt { get; set; }
    /// <summary>When the last confirmation mail was queued: the next waits Newsletter:ConfirmationMailInterval.</summary>
    public DateTimeOffset? ConfirmMailLastAt { get; set; }
    /// <summary>Start of the current day-long window of confirmation mails, and how many were queued in it.</summary>
    public DateTimeOffset? ConfirmMailWindowStart { get; set; }
    public int ConfirmMailsInWindow { get; set; }
}

public enum TokenPurpose { Confirm = 0, Unsubscribe = 1 }

/// <summary>Who was handed the token: the reader in a mail, or the tenant in an API answer (its use is audited as <c>api</c>).</summary>
public enum TokenChannel { Mail = 0, Api = 1 }

/// <summary>A confirm or unsubscribe token. Only its SHA-256 is stored; the value lives in the link.</summary>
public sealed class SubscriptionToken
{
    public Guid Id { get; set; }
    public Guid SubscriptionId { get; set; }
    public TokenPurpose Purpose { get; set; }
    public TokenChannel Channel { get; set; }
    public required byte[] Hash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? ConsumedAt { get; set; }
}

/// <summary>Audit of consent: who agreed or withdrew, when, how and from where. Never updated.</summary>
public sealed class ConsentRecord
{
    public long Id { get; set; }
    public Guid TenantId { get; set; }
    public Guid ListId { get; set; }
    public Guid SubscriberId { get; set; }
    public required string Action { get; set; }
    public required string Source { get; set; }
    public string? IpAddress { get; set; }
    public string? UserAgent { get; set; }
    public DateTimeOffset OccurredAt { get; set; }
    public string? Details { get; set; }
    /// <summary>
    /// Set when the subscriber is erased: the keyed hash of the address (Privacy:AddressHashKey), the only link left
    /// from this anonymised proof to the person; IP, user agent and details are removed then.
    /// </summary>
    public byte[]? SubjectHash { get; set; }
}

public static class ConsentActions
{
    public const string Subscribe = "subscribe";
    public const string Confirm = "confirm";
    public const string Unsubscribe = "unsubscribe";
    public const string PreferencesUpdated = "preferences_updated";
    public const string MarkedUndeliverable = "marked_undeliverable";
    /// <summary>A subscribe of a pending address that queued no mail: the per-address limit was reached.</summary>
    public const string ConfirmationMailSuppressed = "confirmation_mail_suppressed";
    /// <summary>The tenant erased the subscriber (DELETE /api/subscribers/{email}).</summary>
    public const string Erased = "erased";
}

public static class ConsentSources
{
    public const string Api = "api";
    public const string Link = "link";
    public const string OneClick = "one_click";
    public const string Esp = "esp";
    /// <summary>A row of a tenant's CSV import (POST /api/lists/{list_id}/imports).</summary>
    public const string Import = "import";
}

internal sealed class SubscriberConfiguration : IEntityTypeConfiguration<Subscriber>
{
    public void Configure(EntityTypeBuilder<Subscriber> b)
    {
        b.ToTable("subscribers");
        b.Property(s => s.Email).HasMaxLength(320);
        b.Property(s => s.EmailKey).HasMaxLength(320);
        b.Property(s => s.UndeliverableReason).HasMaxLength(100);
        b.HasIndex(s => new { s.TenantId, s.EmailKey }).IsUnique();
        // Prefix search and address-ordered paging (GET /api/subscribers): byte order, so a prefix is one index range
        // whatever the database's collation.
        b.HasIndex(s => new { s.TenantId, s.EmailKey }, "ix_subscribers_email_key_c").UseCollation(null!, "C").HasDatabaseName("ix_subscribers_email_key_c");
        b.HasOne<Tenant>().WithMany().HasForeignKey(s => s.TenantId).OnDelete(DeleteBehavior.Restrict);
    }
}

internal sealed class SubscriptionConfiguration : IEntityTypeConfiguration<Subscription>
{
    public void Configure(EntityTypeBuilder<Subscription> b)
    {
        b.ToTable("subscriptions");
        b.Property(s => s.Preferences).HasColumnType("jsonb");
        // Recipient paging walks (list_id, subscriber_id) for confirmed rows only.
        b.HasIndex(s => new { s.ListId, s.SubscriberId }).IsUnique();
        b.HasIndex(s => new { s.ListId, s.SubscriberId }, "ix_subscriptions_confirmed").HasFilter("status = 1").HasDatabaseName("ix_subscriptions_confirmed");
        b.HasIndex(s => s.SubscriberId);
        // A list's subscribers of one status, newest first (GET /api/lists/{list_id}/subscribers?status=).
        b.HasIndex(s => new { s.ListId, s.Status, s.SubscriberId }, "ix_subscriptions_list_status").HasDatabaseName("ix_subscriptions_list_status");
        b.HasOne<MailingList>().WithMany().HasForeignKey(s => s.ListId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<Subscriber>().WithMany().HasForeignKey(s => s.SubscriberId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class SubscriptionTokenConfiguration : IEntityTypeConfiguration<SubscriptionToken>
{
    public void Configure(EntityTypeBuilder<SubscriptionToken> b)
    {
        b.ToTable("subscription_tokens");
        b.HasIndex(t => t.Hash).IsUnique();
        b.HasIndex(t => t.SubscriptionId);
        b.HasIndex(t => t.ExpiresAt); // retention sweep
        b.HasOne<Subscription>().WithMany().HasForeignKey(t => t.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class ConsentRecordConfiguration : IEntityTypeConfiguration<ConsentRecord>
{
    public void Configure(EntityTypeBuilder<ConsentRecord> b)
    {
        b.ToTable("consent_records");
        b.Property(c => c.Action).HasMaxLength(40);
        b.Property(c => c.Source).HasMaxLength(40);
        b.Property(c => c.IpAddress).HasMaxLength(64);
        b.Property(c => c.UserAgent).HasMaxLength(512);
        b.Property(c => c.Details).HasColumnType("jsonb");
        b.HasIndex(c => new { c.SubscriberId, c.OccurredAt });
        b.HasIndex(c => new { c.TenantId, c.SubjectHash }).HasFilter("subject_hash IS NOT NULL");
    }
}
