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
    /// <summary>
    /// The seed's message as validated: JSON as text (not jsonb: it is only ever written whole and read whole, and
    /// jsonb cost a parse at every insert and a conversion back at every dispatch), compressed with lz4 where the
    /// server has it (pglz's compression of the ~4 KB of a typical message showed in PostgreSQL's profile).
    /// </summary>
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

/// <summary>
/// One recipient of a request, moved through its states only by <see cref="TransactionalTaskStore"/>. The searchable row:
/// written at intake and once more with its final state (and by a retry or an outage); while it is open, its place in the
/// dispatchers' queue is a <see cref="TransactionalDelivery"/>.
/// </summary>
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
    /// <summary>
    /// Our Message-ID (without angle brackets), chosen when the task is created, or the ESP's id once it answered: events
    /// find the task by it (only once it left the open statuses). Set at creation so that the final update changes no
    /// indexed column and can be HOT; readers show it only for a task that is no longer open.
    /// </summary>
    public string? MessageId { get; set; }
    /// <summary>message.metadata with this recipient's recipient_metadata on top (jsonb), searched by GET /api/v1/email.</summary>
    public required string Metadata { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
}

/// <summary>
/// An open task's place in the dispatchers' queue (docs/send-engine.md "Delivery"): inserted with its task, claimed by
/// setting <see cref="LeaseUntil"/> (its durable sending mark) and deleted when the task's final state is written. Narrow,
/// with two indexes (the key and <see cref="DueAt"/>) and no status in any index, so that the claim is a HOT update of a
/// small row instead of a non-HOT update of the wide task row with its eight indexes (GIN on metadata included).
/// </summary>
public sealed class TransactionalDelivery
{
    public Guid TaskId { get; set; }
    /// <summary>When the task may be claimed: send_at, or the next retry.</summary>
    public DateTimeOffset DueAt { get; set; }
    /// <summary>Null while queued; set when a dispatcher claims it into sending, until when it belongs to that dispatcher.</summary>
    public DateTimeOffset? LeaseUntil { get; set; }
    /// <summary>Attempts so far (the same count as the task's), for the retry limit.</summary>
    public int Attempts { get; set; }
}

internal sealed class TransactionalRequestConfiguration : IEntityTypeConfiguration<TransactionalRequest>
{
    public void Configure(EntityTypeBuilder<TransactionalRequest> b)
    {
        b.ToTable("transactional_requests");
        b.HasKey(r => r.Id);
        b.Property(r => r.IdempotencyKey).HasMaxLength(200);
        b.Property(r => r.Message).HasColumnType("text"); // lz4 compression: set by migration TransactionalHotPath where the server has it
        b.Property(r => r.Metadata).HasColumnType("jsonb");
        b.Property(r => r.Response).HasColumnType("jsonb");
        b.Property(r => r.CallbackUrl).HasMaxLength(2048);
        b.Property(r => r.CallbackType).HasMaxLength(16);
        b.HasIndex(r => new { r.TenantId, r.IdempotencyKey }).IsUnique().HasFilter("idempotency_key IS NOT NULL");
        // The retention sweep's scan (a request completes after it was created). Not completed_at: with no index on it,
        // the completion (set once, by the statement that records the last task) is a HOT update.
        b.HasIndex(r => r.CreatedAt);
        // Room in each page for the completion's new row version of every row inserted there (HOT needs it on the same
        // page): a row is about 1 KB (its lz4 message), so at 70 a page took 5 rows and had room for 2 new versions,
        // and a third of the completions were non-HOT updates, a whole row and an entry in each index written again.
        b.HasStorageParameter("fillfactor", 50);
    }
}

internal sealed class TransactionalTaskConfiguration : IEntityTypeConfiguration<TransactionalTask>
{
    public void Configure(EntityTypeBuilder<TransactionalTask> b)
    {
        b.ToTable("transactional_tasks");
        b.HasKey(t => t.Id);
        // No foreign key to the request: its check looked the request up and locked its row (a WAL record) for every task
        // inserted, while tasks are only inserted by the statement that inserts their request
        // (TransactionalTaskStore.CreateManyAsync) and deleted by the retention statement that deletes it.
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
        b.HasIndex(t => t.MessageId).HasFilter("message_id IS NOT NULL");
        b.HasIndex(t => new { t.TenantId, t.CreatedAt, t.Id });
        b.HasIndex(t => new { t.TenantId, t.EmailKey });
        b.HasIndex(t => t.Metadata).HasMethod("gin").HasOperators("jsonb_path_ops");
        // Room in each page for the final update's new row version: with the Message-ID set at creation that update
        // changes no indexed column, and HOT (no entry in any of the six indexes, GIN included) needs the same page.
        b.HasStorageParameter("fillfactor", 70);
    }
}

internal sealed class TransactionalDeliveryConfiguration : IEntityTypeConfiguration<TransactionalDelivery>
{
    public void Configure(EntityTypeBuilder<TransactionalDelivery> b)
    {
        b.ToTable("transactional_deliveries");
        b.HasKey(d => d.TaskId);
        // No foreign key: its check would lock the task row at every insert, and nothing deletes an open task (retention
        // deletes completed requests only); a row whose task is gone is never handed out (the claim joins the task) and
        // is removed by lease recovery.
        // The claim's index: not partial, so that setting lease_until (the claim) changes no indexed column and can be a
        // HOT update; the claim filters leased rows, at most the groups in flight, as it scans.
        b.HasIndex(d => d.DueAt);
        // Room in each page for the claim's new row version (HOT needs it on the same page).
        b.HasStorageParameter("fillfactor", 50);
    }
}
