using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts.Transactional;

namespace SendEngine.Features.Transactional;

/// <summary>
/// One POST /api/v1/email: the validated message (attachments included, as the dispatcher composes from it), the first
/// answer (what a retry with the same Idempotency-Key gets back), and the seed's callback, which the webhooks feature
/// delivers once <see cref="CompletedAt"/> is set.
/// </summary>
public sealed class TransactionalRequest
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    /// <summary>The tenant's Idempotency-Key, unique per tenant; null when none was sent.</summary>
    public string? IdempotencyKey { get; set; }
    /// <summary>SHA-256 of the request body: a key reused with another body is refused rather than answered with the first.</summary>
    public byte[]? BodyHash { get; set; }
    /// <summary>The seed's message as validated (jsonb).</summary>
    public required string Message { get; set; }
    /// <summary>message.metadata (jsonb object).</summary>
    public required string Metadata { get; set; }
    public DateTimeOffset? SendAt { get; set; }
    public string? CallbackUrl { get; set; }
    public string? CallbackType { get; set; }
    /// <summary>The first answer, as sent (jsonb).</summary>
    public required string Response { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>When the last of its tasks became final (sent, rejected, invalid, unknown): the request callback's moment.</summary>
    public DateTimeOffset? CompletedAt { get; set; }
}

/// <summary>One recipient of a request, moved through its states only by <see cref="TransactionalTaskStore"/>.</summary>
public sealed class TransactionalTask
{
    public Guid Id { get; set; }
    public Guid RequestId { get; set; }
    public Guid TenantId { get; set; }
    /// <summary>Order in the request's to[] (the answer lists tasks in it).</summary>
    public int Position { get; set; }
    public required string Email { get; set; }
    /// <summary>The address's identity key (suppressions, statistics, events).</summary>
    public required string EmailKey { get; set; }
    public string? Name { get; set; }
    /// <summary>to, cc or bcc.</summary>
    public required string Type { get; set; }
    /// <summary><see cref="EmailTaskStatuses"/>.</summary>
    public required string Status { get; set; }
    public string? RejectReason { get; set; }
    /// <summary>The server's reply or why the task ended as it did.</summary>
    public string? Detail { get; set; }
    /// <summary>Attempts handed to the transport (a transport that was unreachable does not count).</summary>
    public int Attempts { get; set; }
    /// <summary>When the task may be claimed: send_at, or the next retry.</summary>
    public DateTimeOffset DueAt { get; set; }
    /// <summary>Until when a claimed or sending task belongs to its dispatcher.</summary>
    public DateTimeOffset? LeaseUntil { get; set; }
    /// <summary>Our Message-ID (without angle brackets) or the ESP's id: events find the task by it.</summary>
    public string? MessageId { get; set; }
    /// <summary>message.metadata with this recipient's recipient_metadata on top (jsonb), searched by GET /api/v1/email.</summary>
    public required string Metadata { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
}

internal sealed class TransactionalRequestConfiguration : IEntityTypeConfiguration<TransactionalRequest>
{
    public void Configure(EntityTypeBuilder<TransactionalRequest> b)
    {
        b.ToTable("transactional_requests");
        b.HasKey(r => r.Id);
        b.Property(r => r.IdempotencyKey).HasMaxLength(200);
        b.Property(r => r.Message).HasColumnType("jsonb");
        b.Property(r => r.Metadata).HasColumnType("jsonb");
        b.Property(r => r.Response).HasColumnType("jsonb");
        b.Property(r => r.CallbackUrl).HasMaxLength(2048);
        b.Property(r => r.CallbackType).HasMaxLength(16);
        b.HasIndex(r => new { r.TenantId, r.IdempotencyKey }).IsUnique().HasFilter("idempotency_key IS NOT NULL");
        b.HasIndex(r => new { r.TenantId, r.CreatedAt });
        // The retention sweep's scan: completed requests by age.
        b.HasIndex(r => r.CompletedAt).HasFilter("completed_at IS NOT NULL");
    }
}

internal sealed class TransactionalTaskConfiguration : IEntityTypeConfiguration<TransactionalTask>
{
    public void Configure(EntityTypeBuilder<TransactionalTask> b)
    {
        b.ToTable("transactional_tasks");
        b.HasKey(t => t.Id);
        b.HasOne<TransactionalRequest>().WithMany().HasForeignKey(t => t.RequestId).OnDelete(DeleteBehavior.Cascade);
        b.Property(t => t.Email).HasMaxLength(320);
        b.Property(t => t.EmailKey).HasMaxLength(320);
        b.Property(t => t.Name).HasMaxLength(256);
        b.Property(t => t.Type).HasMaxLength(8);
        b.Property(t => t.Status).HasMaxLength(16);
        b.Property(t => t.RejectReason).HasMaxLength(32);
        b.Property(t => t.Detail).HasMaxLength(1000);
        b.Property(t => t.MessageId).HasMaxLength(998);
        b.Property(t => t.Metadata).HasColumnType("jsonb");
        b.HasIndex(t => t.RequestId);
        // The dispatcher's claim: due tasks only.
        b.HasIndex(t => t.DueAt).HasFilter($"status IN ('{EmailTaskStatuses.Queued}', '{EmailTaskStatuses.Scheduled}')")
            .HasDatabaseName("ix_transactional_tasks_due");
        // Expired leases (a dispatcher that died).
        b.HasIndex(t => t.LeaseUntil).HasFilter($"status IN ('{EmailTaskStatuses.Claimed}', '{EmailTaskStatuses.Sending}')")
            .HasDatabaseName("ix_transactional_tasks_lease");
        b.HasIndex(t => t.MessageId).HasFilter("message_id IS NOT NULL");
        b.HasIndex(t => new { t.TenantId, t.CreatedAt, t.Id });
        b.HasIndex(t => new { t.TenantId, t.EmailKey });
        b.HasIndex(t => t.Metadata).HasMethod("gin").HasOperators("jsonb_path_ops");
    }
}
