using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts;

namespace SendEngine.Features.SendJobs;

/// <summary>A tenant's send: the content, when to start, and where the run is (see docs/send-engine.md).</summary>
public sealed class SendJob
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Guid ListId { get; set; }
    public required string Name { get; set; }
    public required string Subject { get; set; }
    public string? BodyHtml { get; set; }
    public string? BodyText { get; set; }
    /// <summary>The job's own From (normalised address and display name); null: the platform's Smtp:FromAddress/FromName.</summary>
    public string? FromEmail { get; set; }
    public string? FromName { get; set; }
    /// <summary>
    /// The tenant had no branding postal address when the job was created or last started: its mail goes out without
    /// the CAN-SPAM footer, and the job answers a warning (docs/send-engine.md "Footer").
    /// </summary>
    public bool PostalAddressMissing { get; set; }
    /// <summary>One of <see cref="SendJobStatuses"/>.</summary>
    public required string Status { get; set; }
    public DateTimeOffset ScheduledAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public DateTimeOffset? CancelledAt { get; set; }
    /// <summary>The Idempotency-Key header of the create request, unique per tenant.</summary>
    public string? IdempotencyKey { get; set; }
    public string? HangfireJobId { get; set; }
    /// <summary>Last subscriber id copied into the snapshot; the snapshot resumes after it.</summary>
    public Guid? SnapshotCursor { get; set; }
    public DateTimeOffset? SnapshotCompletedAt { get; set; }
    public string? LastError { get; set; }
    /// <summary>Why a paused job waits: the outage (until <see cref="ResumeAt"/>) or what an operator must fix (ResumeAt null).</summary>
    public string? PausedReason { get; set; }
    public DateTimeOffset? ResumeAt { get; set; }
    /// <summary>
    /// Set when the reputation guard paused the job: <c>tenant</c> (the tenant's rates) or <c>list</c> (its first
    /// recipients bounced like a purchased list). Only a platform operator resumes such a job.
    /// </summary>
    public string? PausedBy { get; set; }
    /// <summary>The job's first recipients passed the purchased-list check, or an operator resumed it after that check paused it.</summary>
    public bool ListChecked { get; set; }
    /// <summary>The tenant's sending limit is reached: the job waits (still sending) until this time.</summary>
    public DateTimeOffset? ThrottledUntil { get; set; }
    /// <summary>
    /// The highest recipient id a runner has read for delivery: each read moves it past the rows it took, so runners
    /// read disjoint ranges without writing the rows (RecipientStore.ReadDueAsync).
    /// </summary>
    public long ClaimCursor { get; set; }
    /// <summary>Renewed by every live runner of the job (a third of SendJobs:Lease apart): the watchdog leaves the job alone until it passes.</summary>
    public DateTimeOffset? RunnerLeaseUntil { get; set; }
    /// <summary>When the current outage began (kept across automatic resumes until mail goes out), for SendJobs:GiveUpAfter.</summary>
    public DateTimeOffset? OutageSince { get; set; }
    /// <summary>The Member Center link key (id and issued_at, unix seconds) the job's unsubscribe links are minted with; the key itself is never stored.</summary>
    public string? LinkKeyId { get; set; }
    public long? LinksIssuedAt { get; set; }
    /// <summary>Member Center's change-feed position before the snapshot: what stopped being sendable since is skipped.</summary>
    public string? ChangesCursor { get; set; }
    /// <summary>
    /// Set by the retention sweep when the job's recipient rows are deleted, a while after it finished: from then on
    /// its counts by recipient status (JSON object) and its event counters (JSON) are read from here.
    /// </summary>
    public DateTimeOffset? ArchivedAt { get; set; }
    public string? ArchivedCounts { get; set; }
    public string? ArchivedEventCounts { get; set; }
}

internal sealed class SendJobConfiguration : IEntityTypeConfiguration<SendJob>
{
    public void Configure(EntityTypeBuilder<SendJob> b)
    {
        b.ToTable("send_jobs");
        b.Property(j => j.Name).HasMaxLength(200);
        b.Property(j => j.Subject).HasMaxLength(998);
        b.Property(j => j.Status).HasMaxLength(16);
        b.Property(j => j.FromEmail).HasMaxLength(320);
        b.Property(j => j.FromName).HasMaxLength(256);
        b.Property(j => j.IdempotencyKey).HasMaxLength(200);
        b.Property(j => j.HangfireJobId).HasMaxLength(64);
        b.Property(j => j.LastError).HasMaxLength(2000);
        b.Property(j => j.PausedReason).HasMaxLength(2000);
        b.Property(j => j.PausedBy).HasMaxLength(16);
        b.Property(j => j.LinkKeyId).HasMaxLength(16);
        b.Property(j => j.ChangesCursor).HasMaxLength(64);
        b.Property(j => j.ArchivedCounts).HasColumnType("jsonb");
        b.Property(j => j.ArchivedEventCounts).HasColumnType("jsonb");
        b.HasIndex(j => new { j.TenantId, j.IdempotencyKey }).IsUnique().HasFilter("idempotency_key IS NOT NULL");
        b.HasIndex(j => new { j.TenantId, j.Id });
        b.HasIndex(j => j.Status);
    }
}
