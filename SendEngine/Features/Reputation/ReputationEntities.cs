using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.Reputation;

/// <summary>
/// A tenant's standing with the reputation guard (docs/deliverability.md): its state, why, whether its bulk mail (and
/// transactional mail) is paused, the baseline an operator's resume set, and its sending limits. A tenant without a
/// row is <c>ok</c> with the platform's limits.
/// </summary>
public sealed class TenantReputation
{
    public Guid TenantId { get; set; }
    /// <summary>One of <see cref="ReputationStates"/>.</summary>
    public required string State { get; set; }
    public string? Reason { get; set; }
    public bool BulkPaused { get; set; }
    public bool TransactionalPaused { get; set; }
    public DateTimeOffset? PausedAt { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
    /// <summary>The operator's note of the last pause or resume.</summary>
    public string? Note { get; set; }
    /// <summary>
    /// Set by an operator's resume: counts of hours before <see cref="BaselineHour"/> are ignored, and of that hour only
    /// what came after the resume, so the old window cannot pause the tenant again at once.
    /// </summary>
    public DateTimeOffset? BaselineHour { get; set; }
    public long BaselineSent { get; set; }
    public long BaselineHardBounces { get; set; }
    public long BaselineComplaints { get; set; }
    /// <summary>True when an operator set the limits below (null = unlimited); false: the platform's SendingLimits apply.</summary>
    public bool LimitsSet { get; set; }
    public int? MessagesPerHour { get; set; }
    public int? MessagesPerDay { get; set; }
    /// <summary>The tenant's first counted bulk claim: day 0 of its warm-up.</summary>
    public DateTimeOffset? FirstSendAt { get; set; }
}

public static class ReputationStates
{
    public const string Ok = "ok";
    public const string Warning = "warning";
    public const string Paused = "paused";
}

/// <summary>
/// Hourly counters per tenant and source (a bulk job's runner for its results, the bulk job for its events, or
/// <see cref="Guid.Empty"/>): messages accepted by the relay or ESP plus those refused as unknown mailboxes (sent), hard
/// bounces (synchronous 5.1.x refusals and asynchronous bounce events) and complaints. Written where results and events
/// are recorded, in the same statement or transaction; readers sum a tenant's sources. One row per writer and hour, so
/// that parallel jobs of a tenant, and the runners of one job, do not queue on one row.
/// </summary>
public sealed class ReputationCount
{
    public Guid TenantId { get; set; }
    public DateTimeOffset Hour { get; set; }
    public Guid SourceId { get; set; }
    public long Sent { get; set; }
    public long HardBounces { get; set; }
    public long Complaints { get; set; }
}

/// <summary>
/// Bulk recipients claimed per tenant and limit window (SendingLimits:Window), for the sending limits: the tenant's
/// total (<see cref="Domain"/> empty) and, while a sender domain warms up, that domain's share.
/// </summary>
public sealed class SendCounter
{
    public Guid TenantId { get; set; }
    /// <summary>Empty: the tenant's total; otherwise the verified sender domain the messages went out from.</summary>
    public string Domain { get; set; } = "";
    public DateTimeOffset WindowStart { get; set; }
    public long Messages { get; set; }
}

internal sealed class TenantReputationConfiguration : IEntityTypeConfiguration<TenantReputation>
{
    public void Configure(EntityTypeBuilder<TenantReputation> b)
    {
        b.ToTable("tenant_reputation");
        b.HasKey(t => t.TenantId);
        b.Property(t => t.State).HasMaxLength(16);
        b.Property(t => t.Reason).HasMaxLength(1000);
        b.Property(t => t.Note).HasMaxLength(1000);
        b.HasIndex(t => t.State);
    }
}

internal sealed class ReputationCountConfiguration : IEntityTypeConfiguration<ReputationCount>
{
    public void Configure(EntityTypeBuilder<ReputationCount> b)
    {
        b.ToTable("reputation_counts");
        b.HasKey(c => new { c.TenantId, c.Hour, c.SourceId });
        b.HasIndex(c => c.Hour);
    }
}

internal sealed class SendCounterConfiguration : IEntityTypeConfiguration<SendCounter>
{
    public void Configure(EntityTypeBuilder<SendCounter> b)
    {
        b.ToTable("send_counters");
        b.Property(c => c.Domain).HasMaxLength(253).HasDefaultValue("");
        b.HasKey(c => new { c.TenantId, c.Domain, c.WindowStart });
    }
}
