using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Lists;

public sealed class MailingList
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Name { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

internal sealed class MailingListConfiguration : IEntityTypeConfiguration<MailingList>
{
    public void Configure(EntityTypeBuilder<MailingList> b)
    {
        b.ToTable("mailing_lists");
        b.Property(l => l.Name).HasMaxLength(200);
        b.HasIndex(l => l.TenantId);
        b.HasOne<Tenant>().WithMany().HasForeignKey(l => l.TenantId).OnDelete(DeleteBehavior.Restrict);
    }
}
