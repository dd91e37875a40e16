using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>
/// A tenant's own delivery provider: an SMTP relay or a Tencent SES account. The secret (SMTP password, Tencent
/// SecretKey) is encrypted with Data Protection (<see cref="ProviderSecretProtector"/>): delivery needs it in clear, so
/// it cannot be a hash. <see cref="Username"/> holds the SMTP login or the Tencent SecretId (an identifier, not a secret).
/// </summary>
public sealed class ProviderCredential
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    /// <summary><see cref="Newsletter.Contracts.ProviderCredentials.ProviderKinds"/>.</summary>
    public required string Kind { get; set; }
    public required string Name { get; set; }
    public string? Host { get; set; }
    public int? Port { get; set; }
    /// <summary><see cref="Newsletter.Contracts.ProviderCredentials.SmtpTlsModes"/>.</summary>
    public string? Tls { get; set; }
    public string? Username { get; set; }
    public byte[]? Secret { get; set; }
    public string? Region { get; set; }
    public string? Endpoint { get; set; }
    /// <summary>The tenant's mail goes through it while it is also verified; at most one per tenant.</summary>
    public bool Active { get; set; }
    /// <summary><see cref="Newsletter.Contracts.ProviderCredentials.VerificationStatuses"/>.</summary>
    public required string Status { get; set; }
    public DateTimeOffset? CheckedAt { get; set; }
    public string? CheckDetail { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Changes with any setting or secret: the transport cache keys its instances by it.</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}

internal sealed class ProviderCredentialConfiguration : IEntityTypeConfiguration<ProviderCredential>
{
    public void Configure(EntityTypeBuilder<ProviderCredential> b)
    {
        b.ToTable("provider_credentials");
        b.Property(c => c.Kind).HasMaxLength(16);
        b.Property(c => c.Name).HasMaxLength(200);
        b.Property(c => c.Host).HasMaxLength(253);
        b.Property(c => c.Tls).HasMaxLength(16);
        b.Property(c => c.Username).HasMaxLength(320);
        b.Property(c => c.Region).HasMaxLength(64);
        b.Property(c => c.Endpoint).HasMaxLength(500);
        b.Property(c => c.Status).HasMaxLength(16);
        b.Property(c => c.CheckDetail).HasMaxLength(2000);
        b.HasIndex(c => c.TenantId);
        // At most one active credential per tenant, enforced by the database as well as by the API.
        b.HasIndex(c => c.TenantId, "ix_provider_credentials_tenant_id_active").IsUnique().HasFilter("active");
    }
}
