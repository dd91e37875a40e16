using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Auth;

/// <summary>
/// A token signing key: an RSA-2048 key in a self-signed certificate whose NotBefore/NotAfter say when it signs.
/// Kept in the database so every replica and every restart signs with the same keys.
/// </summary>
public sealed class SigningKey
{
    /// <summary>The certificate thumbprint, which is also the JWK <c>kid</c>.</summary>
    public required string Id { get; set; }
    /// <summary>PKCS#12 with the private key.</summary>
    public required byte[] Certificate { get; set; }
    public DateTimeOffset NotBefore { get; set; }
    public DateTimeOffset NotAfter { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Set by POST /admin/signing-keys/{kid}/revoke: the key leaves the JWKS and never signs again.</summary>
    public DateTimeOffset? RevokedAt { get; set; }
}

internal sealed class SigningKeyConfiguration : IEntityTypeConfiguration<SigningKey>
{
    public void Configure(EntityTypeBuilder<SigningKey> b)
    {
        b.ToTable("signing_keys");
        b.Property(k => k.Id).HasMaxLength(100);
    }
}
