using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.ApiKeys;

/// <summary>
/// A tenant's application (seed 003 §2.1): what API keys belong to. Its one channel, email, is enabled from the
/// start. Deleting it (DeletedAt) makes all its keys answer as deleted.
/// </summary>
public sealed class Application
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Name { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
}

/// <summary>
/// One X-Pigeon-Api-Key. Only its SHA-256 (<see cref="KeyHash"/>, lowercase hex) and its first characters
/// (<see cref="Prefix"/>) are stored. A deleted key keeps its row, so that it answers EXPIRED_API_KEY rather than
/// INVALID_API_KEY.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public Guid ApplicationId { get; set; }
    public Guid TenantId { get; set; }
    public required string Name { get; set; }
    public required string Prefix { get; set; }
    public required string KeyHash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
}

internal sealed class ApplicationConfiguration : IEntityTypeConfiguration<Application>
{
    public void Configure(EntityTypeBuilder<Application> b)
    {
        b.ToTable("applications");
        b.Property(a => a.Name).HasMaxLength(200);
        b.HasIndex(a => a.TenantId);
        b.HasOne<Tenant>().WithMany().HasForeignKey(a => a.TenantId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> b)
    {
        b.ToTable("api_keys");
        b.Property(k => k.Name).HasMaxLength(200);
        b.Property(k => k.Prefix).HasMaxLength(20);
        b.Property(k => k.KeyHash).HasMaxLength(64);
        b.HasIndex(k => k.KeyHash).IsUnique();
        b.HasIndex(k => k.ApplicationId);
        b.HasOne<Application>().WithMany().HasForeignKey(k => k.ApplicationId).OnDelete(DeleteBehavior.Cascade);
    }
}
