using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.SenderDomains;

/// <summary>A domain the tenant registered to send transactional mail from (the from_email's domain must be one).</summary>
public sealed class SenderDomain
{
    public Guid TenantId { get; set; }
    /// <summary>Lower-cased punycode, no trailing dot (<see cref="Newsletter.ServiceDefaults.Mail.EmailAddresses.TryNormalizeDomain"/>).</summary>
    public required string Domain { get; set; }
    /// <summary>unverified until DNS verification exists.</summary>
    public required string Status { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

internal sealed class SenderDomainConfiguration : IEntityTypeConfiguration<SenderDomain>
{
    public void Configure(EntityTypeBuilder<SenderDomain> b)
    {
        b.ToTable("sender_domains");
        b.HasKey(d => new { d.TenantId, d.Domain });
        b.Property(d => d.Domain).HasMaxLength(253);
        b.Property(d => d.Status).HasMaxLength(32);
    }
}
