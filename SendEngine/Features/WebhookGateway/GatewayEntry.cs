using System.ComponentModel.DataAnnotations;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// One inbound webhook request as received (docs/send-engine.md, "Webhook gateway"): written by the webhook's group-commit
/// writer in the same statement batch as its events, so logging costs no extra round trip. The tenant is not known on
/// receipt (Tencent's callbacks name a message, not a tenant): the processor fills <see cref="TenantId"/> when it matches
/// the first event to a recipient or task. Entries whose events never match, and refused requests, stay platform-scoped
/// (tenant null), visible to operators only. The per-event outcomes live on email_events (gateway_entry_id).
/// Kept small because every accepted callback writes one: no second copy of a body whose events hold it (the detail is
/// reassembled from their payloads), headers as plain text, a <see cref="Seq"/> assigned once, and three indexes.
/// </summary>
public sealed class GatewayEntry
{
    /// <summary>UUIDv7 chosen by the receiver: ordered by time, so no round trip is needed to learn it.</summary>
    public Guid Id { get; set; }
    /// <summary>Assigned once on insert (identity): the live view's cursor for new entries. Later changes (attribution,
    /// processing, apply) reach the live view as notifications, never by renumbering (<see cref="GatewayFeed"/>).</summary>
    public long Seq { get; set; }
    public Guid? TenantId { get; set; }
    public DateTimeOffset ReceivedAt { get; set; }
    /// <summary>tencent_webhook, test_console or imap.</summary>
    public required string Source { get; set; }
    public required string Method { get; set; }
    /// <summary>Path and query, the token in the query replaced by REDACTED.</summary>
    public required string Path { get; set; }
    /// <summary>"Name: value" lines (<see cref="GatewayRecorder.FormatHeaders"/>); secrets (signature, token,
    /// authorization) cut to a prefix. Plain text: nothing for PostgreSQL to parse on the hot path.</summary>
    public required string Headers { get; set; }
    /// <summary>The first <see cref="WebhookGatewayOptions.MaxBodyBytes"/> bytes, as UTF-8 text; null when every event of
    /// the body was stored with this entry, whose payloads then are the body (<see cref="FirstEventId"/>…).</summary>
    public string? Body { get; set; }
    public bool BodyTruncated { get; set; }
    public required string Verification { get; set; }
    public int StatusCode { get; set; }
    /// <summary>Events in the body (0 when it was refused).</summary>
    public int Events { get; set; }
    /// <summary>Normalised event types of the body, in order.</summary>
    public string[] EventTypes { get; set; } = [];
    /// <summary>Why it was refused (the problem detail), when it was.</summary>
    public string? Error { get; set; }
    /// <summary>The email_events ids stored with this entry, lowest and highest (one INSERT numbers a request's events
    /// consecutively): its events are found through email_events' primary key, so they need no index of their own.</summary>
    public long? FirstEventId { get; set; }
    public long? LastEventId { get; set; }
}

/// <summary>A tenant's gateway switch; no row means ingestion is on.</summary>
public sealed class GatewaySetting
{
    public Guid TenantId { get; set; }
    public bool IngestionEnabled { get; set; } = true;
    public DateTimeOffset UpdatedAt { get; set; }
}

internal sealed class GatewayEntryConfiguration : IEntityTypeConfiguration<GatewayEntry>
{
    public void Configure(EntityTypeBuilder<GatewayEntry> b)
    {
        b.ToTable("webhook_gateway_entries");
        b.Property(e => e.Id).ValueGeneratedNever();
        b.Property(e => e.Seq).UseIdentityAlwaysColumn();
        b.Property(e => e.Source).HasMaxLength(32);
        b.Property(e => e.Method).HasMaxLength(16);
        b.Property(e => e.Path).HasMaxLength(2048);
        b.Property(e => e.Headers).HasColumnType("text");
        b.Property(e => e.Verification).HasMaxLength(32);
        b.Property(e => e.Error).HasMaxLength(1000);
        // The tenant's log, newest first (and the trim); the platform log is tenant_id IS NULL.
        b.HasIndex(e => new { e.TenantId, e.Id });
        // The live view's reads of the seq ranges it was not handed (each pass while watched). A B-tree: seq only grows, so
        // an insert goes to the rightmost leaf; a BRIN index made every read scan the whole unsummarised tail (autovacuum
        // summarises it about once a minute), 28 ms a read at 5,000 entries a second.
        b.HasIndex(e => e.Seq);
    }
}

internal sealed class GatewaySettingConfiguration : IEntityTypeConfiguration<GatewaySetting>
{
    public void Configure(EntityTypeBuilder<GatewaySetting> b)
    {
        b.ToTable("webhook_gateway_settings");
        b.HasKey(s => s.TenantId);
    }
}

/// <summary>WebhookGateway: the inbound log's limits, trim and live view.</summary>
public sealed class WebhookGatewayOptions
{
    public const string Section = "WebhookGateway";

    /// <summary>Entries kept per tenant (and in the platform log); older ones are trimmed by the sweep.</summary>
    [Range(10, 1_000_000)]
    public int KeepPerTenant { get; set; } = 1000;

    /// <summary>How much of each body is kept.</summary>
    [Range(256, 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 16 * 1024;

    /// <summary>How often the trim runs: ingestion never deletes, so the log may exceed the limit by one interval's entries.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The live view's shared poll: at most one query per interval per process, whatever the number of watchers;
    /// this process's own writes wake it earlier (never more often than <see cref="StreamMinInterval"/>).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan StreamPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The shortest time between two passes of the live view; the pass's chunks are written to the watchers over it
    /// (<see cref="StreamPhases"/>).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan StreamMinInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The watchers are written to in this many groups spread evenly over <see cref="StreamMinInterval"/> (each
    /// watcher in its own phase, the first right after the pass): with 100 watchers and 10 phases, 10 writes and flushes
    /// every 20 ms instead of 100 at once.</summary>
    [Range(1, 1000)]
    public int StreamPhases { get; set; } = 10;

    /// <summary>A comment line this often keeps idle streams (and proxies) open.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan StreamHeartbeat { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Chunks a slow watcher may fall behind before the oldest are dropped for it (it then gets an <c>event: lost</c>
    /// with their number of entries). A chunk is one pass's entries of
    /// the watcher's scope, pre-encoded, up to 32 KB (<see cref="GatewayFeed.ChunkBytes"/>, about 80 entries): 64 is at
    /// least 64 passes (13 s at the 200 ms minimum interval) and at most about 2 MB, shared by all the scope's watchers.</summary>
    [Range(4, 100_000)]
    public int StreamBuffer { get; set; } = 64;

    /// <summary>Entries per second each scope's live view shows, at most (0: all). Beyond it a pass streams the first of
    /// its entries and an <c>event: skipped</c> with the number left out; the log lists them all. A live view is read by
    /// people: at 5,000 entries a second nobody reads a row, and sending every one to each of 100 watchers cost the webhook
    /// a third of its rate (docs/performance.md). The allowance builds up to one second's worth while the log is quiet.</summary>
    [Range(0, 1_000_000)]
    public int StreamMaxEntriesPerSecond { get; set; } = 200;

    /// <summary>Where the test console posts its sample events: this Send Engine's own base URL. Unset: the first
    /// address the server listens on.</summary>
    public string? SelfUrl { get; set; }

    /// <summary>How long the live view waits for a seq it has not seen while later ones are committed: the writers
    /// insert concurrently, so a later seq can commit first and the earlier one a moment after. Past this wait the missing
    /// seq is taken for a rolled-back insert and skipped (an entry committing even later is then not streamed; the list
    /// shows it).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan StreamGapWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the test console waits for the processor's outcome before answering without it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:30")]
    public TimeSpan TestEventWait { get; set; } = TimeSpan.FromSeconds(3);
}
