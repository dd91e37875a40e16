using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>
/// A row of the operation log (table <c>operation_log</c>, one in each service's database). Written by
/// <see cref="OperationLogMiddleware"/> with one INSERT, read by <see cref="OperationLogStore"/>; the entity exists so
/// each service's migrations create the table and its indexes.
/// </summary>
public sealed class OperationLogEntry
{
    public long Id { get; set; }
    public DateTimeOffset OccurredAt { get; set; }
    /// <summary>Null for a platform-wide change (a new tenant, a signing key).</summary>
    public Guid? TenantId { get; set; }
    public required string ActorKind { get; set; }
    public string? ActorId { get; set; }
    public string? ActorDisplay { get; set; }
    public required string Action { get; set; }
    /// <summary>jsonb: the route values.</summary>
    public string? Target { get; set; }
    public required string Method { get; set; }
    public required string Path { get; set; }
    public int StatusCode { get; set; }
    public required string Outcome { get; set; }
    public string? ClientIp { get; set; }
    public string? UserAgent { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public string? Note { get; set; }
}

/// <summary>Applied by both services' DbContexts (<c>modelBuilder.ApplyConfiguration</c>).</summary>
public sealed class OperationLogEntryConfiguration : IEntityTypeConfiguration<OperationLogEntry>
{
    public void Configure(EntityTypeBuilder<OperationLogEntry> b)
    {
        b.ToTable(OperationLogSchema.Table);
        b.Property(e => e.ActorKind).HasMaxLength(20);
        b.Property(e => e.ActorId).HasMaxLength(200);
        b.Property(e => e.ActorDisplay).HasMaxLength(320);
        b.Property(e => e.Action).HasMaxLength(100);
        b.Property(e => e.Target).HasColumnType("jsonb");
        b.Property(e => e.Method).HasMaxLength(10);
        b.Property(e => e.Path).HasMaxLength(2000);
        b.Property(e => e.Outcome).HasMaxLength(20);
        b.Property(e => e.ClientIp).HasMaxLength(64);
        b.Property(e => e.UserAgent).HasMaxLength(500);
        b.Property(e => e.Before).HasColumnType("jsonb");
        b.Property(e => e.After).HasColumnType("jsonb");
        b.Property(e => e.Note).HasMaxLength(500);
        // Every read is newest first within a tenant, optionally by actor or action; the sweep and the admin view's
        // time filter use occurred_at.
        b.HasIndex(e => new { e.TenantId, e.Id }).IsDescending(false, true);
        b.HasIndex(e => new { e.TenantId, e.ActorId, e.Id }).IsDescending(false, false, true);
        b.HasIndex(e => new { e.TenantId, e.Action, e.Id }).IsDescending(false, false, true);
        b.HasIndex(e => e.OccurredAt);
    }
}

/// <summary>The table's name and the append-only trigger, which each service's migration creates.</summary>
public static class OperationLogSchema
{
    public const string Table = "operation_log";

    /// <summary>
    /// The transaction-local setting the retention sweep sets to its cutoff (an ISO timestamp): the trigger lets a
    /// DELETE through only for rows older than it; every UPDATE, every other DELETE and TRUNCATE fail.
    /// </summary>
    public const string SweepSetting = "newsletter.operation_log_sweep";

    public const string CreateTriggerSql = $$"""
        CREATE FUNCTION operation_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            cutoff text := current_setting('{{SweepSetting}}', true);
        BEGIN
            IF TG_OP = 'DELETE' AND coalesce(cutoff, '') <> '' AND OLD.occurred_at < cutoff::timestamptz THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'operation_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END
        $fn$;
        CREATE TRIGGER operation_log_append_only BEFORE UPDATE OR DELETE ON {{Table}}
            FOR EACH ROW EXECUTE FUNCTION operation_log_append_only();
        CREATE TRIGGER operation_log_no_truncate BEFORE TRUNCATE ON {{Table}}
            FOR EACH STATEMENT EXECUTE FUNCTION operation_log_append_only();
        """;

    public const string DropTriggerSql = $"""
        DROP TRIGGER IF EXISTS operation_log_no_truncate ON {Table};
        DROP TRIGGER IF EXISTS operation_log_append_only ON {Table};
        DROP FUNCTION IF EXISTS operation_log_append_only();
        """;
}
