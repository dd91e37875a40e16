using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.MemberCenter;

/// <summary>
/// A suppression or unsubscribe still to be reported to Member Center (POST /internal/suppressions). Queued in the
/// transaction that applies the email event, so Send Engine's own effects (bounced status, suppression) commit even
/// while Member Center is down; <see cref="MemberCenterReporter"/> delivers it afterwards.
/// </summary>
public sealed class MemberCenterReport
{
    public long Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Email { get; set; }
    /// <summary>hard_bounce, complaint or unsubscribe.</summary>
    public required string Reason { get; set; }
    /// <summary>The list an unsubscribe applies to; null for tenant-wide reports.</summary>
    public Guid? ListId { get; set; }
    public DateTimeOffset OccurredAt { get; set; }
    public long? EmailEventId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset NextAttemptAt { get; set; }
    /// <summary>When it was delivered or given up (see <see cref="Outcome"/>); null while pending.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
    /// <summary>sent, or failed (refused by Member Center: never for lack of attempts).</summary>
    public string? Outcome { get; set; }
    public string? LastError { get; set; }
}

internal sealed class MemberCenterReportConfiguration : IEntityTypeConfiguration<MemberCenterReport>
{
    public void Configure(EntityTypeBuilder<MemberCenterReport> b)
    {
        b.ToTable("member_center_reports");
        b.Property(r => r.Id).UseIdentityAlwaysColumn();
        b.Property(r => r.Email).HasMaxLength(320);
        b.Property(r => r.Reason).HasMaxLength(32);
        b.Property(r => r.Outcome).HasMaxLength(16);
        b.Property(r => r.LastError).HasMaxLength(2000);
        b.HasIndex(r => r.NextAttemptAt).HasFilter("completed_at IS NULL").HasDatabaseName("ix_member_center_reports_due");
        // The claimer's look-up of the addresses to skip before every batch (PendingReports).
        b.HasIndex(r => new { r.TenantId, r.Email }).HasFilter(PendingReports.Unacknowledged).HasDatabaseName("ix_member_center_reports_unacknowledged");
    }
}
