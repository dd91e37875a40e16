using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// A root key for stateless unsubscribe links. It signs links from <see cref="CreatedAt"/> until <see cref="SignsUntil"/>
/// (<c>Newsletter:LinkKeyRotation</c>), keeps verifying them until <see cref="RetireAt"/> (= SignsUntil + the unsubscribe
/// token lifetime, when the last link it signed has expired) and is then deleted.
/// </summary>
public sealed class LinkKey
{
    /// <summary>The key id in every link it signed: 8 base64url characters.</summary>
    public required string Id { get; set; }
    /// <summary>The 256-bit secret, encrypted (see <see cref="LinkKeyProtector"/>); never stored in plaintext.</summary>
    public required byte[] ProtectedSecret { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset SignsUntil { get; set; }
    public DateTimeOffset RetireAt { get; set; }
}

internal sealed class LinkKeyConfiguration : IEntityTypeConfiguration<LinkKey>
{
    public void Configure(EntityTypeBuilder<LinkKey> b)
    {
        b.ToTable("link_keys");
        b.Property(k => k.Id).HasMaxLength(16);
    }
}
