using System.ComponentModel.DataAnnotations;
using MemberCenter.Features.Lists;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Subscribers;

/// <summary>
/// A CSV import of one list: staged whole at upload (its valid rows in <see cref="SubscriberImportRow"/>, invalid lines
/// counted here), then applied by <see cref="SubscriberImportProcessor"/> in batches. Holds no address itself.
/// </summary>
public sealed class SubscriberImport
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Guid ListId { get; set; }
    /// <summary>confirmed or double_opt_in (SubscriberAddModes).</summary>
    public required string Mode { get; set; }
    public string? ConsentNote { get; set; }
    /// <summary>queued, processing, completed (ImportStatuses).</summary>
    public required string Status { get; set; }
    public int TotalRows { get; set; }
    public int Processed { get; set; }
    public int Created { get; set; }
    public int Updated { get; set; }
    public int Skipped { get; set; }
    public int Invalid { get; set; }
    /// <summary>The first invalid lines as a JSON array of {line, reason}.</summary>
    public string InvalidLines { get; set; } = "[]";
    /// <summary>Who uploaded it (the token's sub) and from where: the consent records of its rows carry these.</summary>
    public string? CreatedBy { get; set; }
    public string? IpAddress { get; set; }
    public string? UserAgent { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
}

/// <summary>A valid row waiting to be applied; deleted in the transaction that applies it, so none is applied twice.</summary>
public sealed class SubscriberImportRow
{
    public Guid ImportId { get; set; }
    /// <summary>The CSV line the record starts on (the header is line 1).</summary>
    public int Line { get; set; }
    public required string Email { get; set; }
    public required string EmailKey { get; set; }
    /// <summary>A JSON object of the row's non-empty preference columns, or null.</summary>
    public string? Preferences { get; set; }
}

public sealed class ImportOptions
{
    public const string Section = "Imports";

    /// <summary>The largest CSV body accepted (413 beyond).</summary>
    [Range(1024, 1L << 34)]
    public long MaxBytes { get; set; } = 50L * 1024 * 1024;

    /// <summary>The most data lines (header excluded, blank lines not counted) accepted (413 beyond).</summary>
    [Range(1, 10_000_000)]
    public int MaxRows { get; set; } = 1_000_000;

    /// <summary>Rows applied per transaction (one round trip of batched subscribes).</summary>
    [Range(1, 5000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>How often to look for imports another replica staged (this process's uploads wake the loop at once).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class SubscriberImportConfiguration : IEntityTypeConfiguration<SubscriberImport>
{
    public void Configure(EntityTypeBuilder<SubscriberImport> b)
    {
        b.ToTable("subscriber_imports");
        b.Property(i => i.Mode).HasMaxLength(20);
        b.Property(i => i.Status).HasMaxLength(20);
        b.Property(i => i.ConsentNote).HasMaxLength(500);
        b.Property(i => i.InvalidLines).HasColumnType("jsonb");
        b.Property(i => i.CreatedBy).HasMaxLength(200);
        b.Property(i => i.IpAddress).HasMaxLength(64);
        b.Property(i => i.UserAgent).HasMaxLength(512);
        b.HasIndex(i => i.ListId);
        // The processor's pick: unfinished imports, oldest first.
        b.HasIndex(i => i.CreatedAt, "ix_subscriber_imports_unfinished").HasFilter("status <> 'completed'").HasDatabaseName("ix_subscriber_imports_unfinished");
        b.HasOne<MailingList>().WithMany().HasForeignKey(i => i.ListId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class SubscriberImportRowConfiguration : IEntityTypeConfiguration<SubscriberImportRow>
{
    public void Configure(EntityTypeBuilder<SubscriberImportRow> b)
    {
        b.ToTable("subscriber_import_rows");
        b.HasKey(r => new { r.ImportId, r.Line });
        b.Property(r => r.Email).HasMaxLength(320);
        b.Property(r => r.EmailKey).HasMaxLength(320);
        b.Property(r => r.Preferences).HasColumnType("jsonb");
        b.HasOne<SubscriberImport>().WithMany().HasForeignKey(r => r.ImportId).OnDelete(DeleteBehavior.Cascade);
    }
}
