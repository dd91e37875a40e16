using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// One address of a job's snapshot and its delivery state (<see cref="RecipientStatuses"/>):
/// pending → claimed → sending → sent | failed | bounced, or suppressed / cancelled; a transient failure goes back to pending.
/// Written in bulk with COPY and updated with plain SQL by the delivery pipeline (see SendJobRunner).
/// </summary>
public sealed class SendJobRecipient
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public Guid SubscriberId { get; set; }
    public required string Email { get; set; }
    /// <summary>The subscriber's preferences at snapshot time (JSON object), for merge tags.</summary>
    public required string Preferences { get; set; }
    /// <summary>Only rows snapshotted before unsubscribe links were minted per message (stateless, docs/internal-api.md) carry a stored URL.</summary>
    public string? UnsubscribeUrl { get; set; }
    public required string Status { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset? NextAttemptAt { get; set; }
    /// <summary>The runner holding the row (claimed or sending) and until when; an expired lease is recovered.</summary>
    public Guid? ClaimedBy { get; set; }
    public DateTimeOffset? LeaseUntil { get; set; }
    public string? MessageId { get; set; }
    /// <summary>The server's reply, or why the address was skipped.</summary>
    public string? Detail { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    /// <summary>Who acknowledged an <c>unknown</c> outcome as sent or failed (<c>user:&lt;sub&gt;</c> or <c>client:&lt;client_id&gt;</c>), when, and their note.</summary>
    public string? ResolvedBy { get; set; }
    public DateTimeOffset? ResolvedAt { get; set; }
    public string? ResolutionNote { get; set; }
}

internal sealed class SendJobRecipientConfiguration : IEntityTypeConfiguration<SendJobRecipient>
{
    public void Configure(EntityTypeBuilder<SendJobRecipient> b)
    {
        b.ToTable("send_job_recipients");
        b.Property(r => r.Id).UseIdentityAlwaysColumn();
        b.Property(r => r.Email).HasMaxLength(320);
        b.Property(r => r.Preferences).HasColumnType("jsonb");
        b.Property(r => r.Status).HasMaxLength(16);
        b.Property(r => r.MessageId).HasMaxLength(255);
        b.Property(r => r.Detail).HasMaxLength(1000);
        b.Property(r => r.ResolvedBy).HasMaxLength(200);
        b.Property(r => r.ResolutionNote).HasMaxLength(500);
        b.HasOne<SendJob>().WithMany().HasForeignKey(r => r.JobId).OnDelete(DeleteBehavior.Cascade);
        b.HasIndex(r => new { r.JobId, r.SubscriberId }).IsUnique();
        b.HasIndex(r => new { r.JobId, r.Status, r.Id });
        b.HasIndex(r => r.MessageId).HasFilter("message_id IS NOT NULL");
        // Per-job statistics by sent time (GET /api/send-jobs/{id}/stats) and the operator status' last hour.
        b.HasIndex(r => new { r.JobId, r.SentAt }).HasFilter("sent_at IS NOT NULL");
    }
}
