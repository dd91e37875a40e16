using MemberCenter.Features.Tenants;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.People;

/// <summary>A person who signs in (to the console): an ASP.NET Core Identity user. Tenants are reached through memberships.</summary>
public sealed class Person : IdentityUser<Guid>
{
    public string? DisplayName { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The tenant of the person's last token: the default when an authorize request names none.</summary>
    public Guid? LastTenantId { get; set; }
}

/// <summary>A person's role in a tenant (owner, admin, editor, viewer).</summary>
public sealed class Membership
{
    public Guid UserId { get; set; }
    public Guid TenantId { get; set; }
    public required string Role { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>
/// An invitation to join a tenant. The token (in the mail only) is stored as SHA-256; it is minted when the mail is
/// sent (the outbox row holds none), so only the latest mail's link works.
/// </summary>
public sealed class Invitation
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Email { get; set; }
    public required string NormalizedEmail { get; set; }
    public required string Role { get; set; }
    public byte[]? TokenHash { get; set; }
    public Guid? InvitedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? AcceptedAt { get; set; }
    public Guid? AcceptedBy { get; set; }
}

/// <summary>The Identity role of platform operators.</summary>
public static class PlatformRoles
{
    public const string Operator = "platform_operator";
}

internal sealed class PersonConfiguration : IEntityTypeConfiguration<Person>
{
    public void Configure(EntityTypeBuilder<Person> b)
    {
        b.Property(p => p.DisplayName).HasMaxLength(200);
    }
}

internal sealed class MembershipConfiguration : IEntityTypeConfiguration<Membership>
{
    public void Configure(EntityTypeBuilder<Membership> b)
    {
        b.ToTable("memberships");
        b.HasKey(m => new { m.UserId, m.TenantId });
        b.Property(m => m.Role).HasMaxLength(20);
        b.HasIndex(m => new { m.TenantId, m.UserId });
        b.HasOne<Person>().WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<Tenant>().WithMany().HasForeignKey(m => m.TenantId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class InvitationConfiguration : IEntityTypeConfiguration<Invitation>
{
    public void Configure(EntityTypeBuilder<Invitation> b)
    {
        b.ToTable("invitations");
        b.Property(i => i.Email).HasMaxLength(320);
        b.Property(i => i.NormalizedEmail).HasMaxLength(320);
        b.Property(i => i.Role).HasMaxLength(20);
        b.HasIndex(i => i.TokenHash).IsUnique();
        b.HasIndex(i => new { i.TenantId, i.CreatedAt });
        b.HasOne<Tenant>().WithMany().HasForeignKey(i => i.TenantId).OnDelete(DeleteBehavior.Cascade);
    }
}
