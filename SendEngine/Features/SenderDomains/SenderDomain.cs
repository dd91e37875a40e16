using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.SenderDomains;

/// <summary>A domain the tenant registered to send mail from, and the outcome of its last DNS check.</summary>
public sealed class SenderDomain
{
    public Guid TenantId { get; set; }
    /// <summary>Lower-cased punycode, no trailing dot (<see cref="Newsletter.ServiceDefaults.Mail.EmailAddresses.TryNormalizeDomain"/>).</summary>
    public required string Domain { get; set; }
    /// <summary>unverified (never checked), verified or failed (<see cref="Newsletter.Contracts.SenderDomains.SenderDomainStatuses"/>).</summary>
    public required string Status { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? LastCheckedAt { get; set; }
    /// <summary>When the domain last became verified (kept while it stays verified).</summary>
    public DateTimeOffset? VerifiedAt { get; set; }
    /// <summary>The last check's result per record (JSON, <see cref="StoredCheck"/> by record key).</summary>
    public string? CheckResults { get; set; }
}

/// <summary>
/// A DKIM key pair of a sender domain. The newest (no <see cref="SupersededAt"/>) signs; a superseded key stays
/// published and checked for <see cref="SenderDomainOptions.RotationOverlap"/>, then is retired (deleted).
/// </summary>
public sealed class SenderDomainKey
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Domain { get; set; }
    public required string Selector { get; set; }
    /// <summary>Base64 SubjectPublicKeyInfo: the p= of the DKIM record.</summary>
    public required string PublicKey { get; set; }
    /// <summary>The PKCS#1 private key, encrypted by <see cref="DkimKeyProtector"/> (bound to <see cref="Id"/>).</summary>
    public required byte[] PrivateKey { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? SupersededAt { get; set; }
}

internal sealed class SenderDomainConfiguration : IEntityTypeConfiguration<SenderDomain>
{
    public void Configure(EntityTypeBuilder<SenderDomain> b)
    {
        b.ToTable("sender_domains");
        b.HasKey(d => new { d.TenantId, d.Domain });
        b.Property(d => d.Domain).HasMaxLength(253);
        b.Property(d => d.Status).HasMaxLength(32);
        b.Property(d => d.CheckResults).HasColumnType("jsonb");
    }
}

internal sealed class SenderDomainKeyConfiguration : IEntityTypeConfiguration<SenderDomainKey>
{
    public void Configure(EntityTypeBuilder<SenderDomainKey> b)
    {
        b.ToTable("sender_domain_keys");
        b.HasKey(k => k.Id);
        b.Property(k => k.Domain).HasMaxLength(253);
        b.Property(k => k.Selector).HasMaxLength(63);
        b.Property(k => k.PublicKey).HasMaxLength(1024);
        b.HasIndex(k => new { k.TenantId, k.Domain, k.Selector }).IsUnique();
        // Removing the domain removes its keys.
        b.HasOne<SenderDomain>().WithMany().HasForeignKey(k => new { k.TenantId, k.Domain }).OnDelete(DeleteBehavior.Cascade);
    }
}
