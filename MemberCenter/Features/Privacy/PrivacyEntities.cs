using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Privacy;

/// <summary>
/// The hashed suppression an erasure leaves: the tenant once held this address and erased it. Only the keyed hash is
/// kept (<see cref="Newsletter.ServiceDefaults.Privacy.AddressHasher"/>). A new subscribe of the address deletes it and
/// queues the lift of Send Engine's matching suppression.
/// </summary>
public sealed class ErasedAddress
{
    public Guid TenantId { get; set; }
    public required byte[] AddressHash { get; set; }
    public DateTimeOffset ErasedAt { get; set; }
}

public static class SendEngineRequestKinds
{
    /// <summary>POST /internal/subscribers/erase.</summary>
    public const string Erase = "erase";
    /// <summary>POST /internal/subscribers/lift-erasure: the address subscribed anew.</summary>
    public const string LiftErasure = "lift_erasure";
}

/// <summary>
/// A call Send Engine must receive, written in the transaction of the change that needs it and retried with backoff
/// until Send Engine acknowledges (<see cref="SendEngineRequestDispatcher"/>), so an outage delays it and loses nothing.
/// The address is kept only until then; afterwards the row holds its keyed hash alone.
/// </summary>
public sealed class SendEngineRequest
{
    public long Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Kind { get; set; }
    /// <summary>The normalised address; set to null once Send Engine has answered.</summary>
    public string? Email { get; set; }
    /// <summary>Orders the requests of one address: a later one waits until the earlier is done.</summary>
    public required byte[] AddressHash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset NextAttemptAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
    /// <summary>done, or failed (Send Engine refused it as invalid).</summary>
    public string? Outcome { get; set; }
    public string? LastError { get; set; }
}

internal sealed class ErasedAddressConfiguration : IEntityTypeConfiguration<ErasedAddress>
{
    public void Configure(EntityTypeBuilder<ErasedAddress> b)
    {
        b.ToTable("erased_addresses");
        b.HasKey(e => new { e.TenantId, e.AddressHash });
        b.HasOne<Tenants.Tenant>().WithMany().HasForeignKey(e => e.TenantId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class SendEngineRequestConfiguration : IEntityTypeConfiguration<SendEngineRequest>
{
    public void Configure(EntityTypeBuilder<SendEngineRequest> b)
    {
        b.ToTable("send_engine_requests");
        b.Property(r => r.Id).UseIdentityAlwaysColumn();
        b.Property(r => r.Kind).HasMaxLength(20);
        b.Property(r => r.Email).HasMaxLength(320);
        b.Property(r => r.Outcome).HasMaxLength(16);
        b.Property(r => r.LastError).HasMaxLength(1000);
        b.HasIndex(r => r.NextAttemptAt).HasFilter("completed_at IS NULL").HasDatabaseName("ix_send_engine_requests_due");
        b.HasIndex(r => new { r.TenantId, r.AddressHash, r.Id }).HasFilter("completed_at IS NULL").HasDatabaseName("ix_send_engine_requests_open");
    }
}
