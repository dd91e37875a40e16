using Newsletter.ServiceDefaults.Mail;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.Suppressions;

/// <summary>An address the tenant must not be mailed at, consulted before every batch.</summary>
public sealed class Suppression
{
    public Guid TenantId { get; set; }
    /// <summary>The address's identity key (<see cref="EmailAddresses.Key"/>: lower-cased, punycode domain).</summary>
    public required string Email { get; set; }
    /// <summary>hard_bounce, complaint, unsubscribe or manual.</summary>
    public required string Reason { get; set; }
    /// <summary>api (the tenant, through /api/suppressions), esp (bounces and complaints from ESP webhooks) or delivery
    /// (an SMTP server refused the mailbox: 5.1.x, 5.2.1).</summary>
    public required string Source { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The key suppressions, statistics and pending reports are stored under: Member Center's identity rule.</summary>
    public static string Normalize(string email) => EmailAddresses.Key(email);
}

internal sealed class SuppressionConfiguration : IEntityTypeConfiguration<Suppression>
{
    public void Configure(EntityTypeBuilder<Suppression> b)
    {
        b.ToTable("suppressions");
        b.HasKey(s => new { s.TenantId, s.Email });
        b.Property(s => s.Email).HasMaxLength(320);
        b.Property(s => s.Reason).HasMaxLength(32);
        b.Property(s => s.Source).HasMaxLength(32);
        // The console's search (GET /api/suppressions): address order and prefix ranges in byte order, whatever the
        // database's collation, with or without a reason.
        b.HasIndex(s => new { s.TenantId, s.Email }, "ix_suppressions_email_c").UseCollation(null!, "C");
        b.HasIndex(s => new { s.TenantId, s.Reason, s.Email }, "ix_suppressions_reason_email_c").UseCollation(null!, null!, "C");
    }
}
