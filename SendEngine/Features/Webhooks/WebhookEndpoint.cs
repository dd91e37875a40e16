using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts.Webhooks;

namespace SendEngine.Features.Webhooks;

/// <summary>
/// A tenant's event webhook endpoint: where its subscribed events are POSTed, signed per Standard Webhooks. The signing
/// secret is stored encrypted (<see cref="WebhookSecretProtector"/>): the signature needs the secret itself. During a
/// rotation's overlap the previous secret signs too, so a receiver can switch at its own pace.
/// </summary>
public sealed class WebhookEndpoint
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public required string Url { get; set; }
    public string[] EventTypes { get; set; } = [];
    public string? Description { get; set; }
    /// <summary><see cref="WebhookEndpointStates"/>: only enabled endpoints get new events and attempts.</summary>
    public string State { get; set; } = WebhookEndpointStates.Enabled;
    public string? DisabledReason { get; set; }
    public DateTimeOffset? DisabledAt { get; set; }
    /// <summary>The first failed attempt since the last success; the endpoint is disabled once this is older than the window.</summary>
    public DateTimeOffset? FailingSince { get; set; }
    /// <summary>Failed attempts in a row (any message); reset by a success.</summary>
    public int ConsecutiveFailures { get; set; }
    /// <summary>
    /// Set while the endpoint is paused (<see cref="EventWebhookOptions.PauseAfterFailures"/> failures in a row): its
    /// messages wait, unattempted, and once this time has passed one of them is sent as a probe; a success resumes them all.
    /// </summary>
    public DateTimeOffset? PausedUntil { get; set; }
    public required byte[] Secret { get; set; }
    public byte[]? PreviousSecret { get; set; }
    public DateTimeOffset? PreviousSecretExpiresAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// One event for one endpoint (the outbox): written in the transaction of the change that caused it, delivered at least
/// once by <see cref="WebhookDispatcher"/>. <see cref="WebhookId"/> is the <c>webhook-id</c> header of every attempt and
/// replay; <see cref="Payload"/> is the exact body that is signed and sent.
/// </summary>
public sealed class WebhookMessage
{
    public long Id { get; set; }
    public required string WebhookId { get; set; }
    public Guid EndpointId { get; set; }
    public Guid TenantId { get; set; }
    public required string EventType { get; set; }
    public required string Payload { get; set; }
    /// <summary>pending, delivered or failed (the retry schedule ran out).</summary>
    public required string Status { get; set; }
    public int Attempts { get; set; }
    /// <summary>When the next attempt is due; also the lease of a claimed message (moved ahead while it is in flight).</summary>
    public DateTimeOffset? NextAttemptAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
    public string? LastError { get; set; }
    /// <summary>Set by a replay: the next attempt is recorded as one.</summary>
    public bool Replay { get; set; }
}

/// <summary>One POST of a message: what was sent and what came back (status, first 1 KB), kept for the retention window.</summary>
public sealed class WebhookAttempt
{
    public long Id { get; set; }
    public long MessageId { get; set; }
    public required string WebhookId { get; set; }
    public Guid EndpointId { get; set; }
    public Guid TenantId { get; set; }
    public required string EventType { get; set; }
    public DateTimeOffset AttemptedAt { get; set; }
    public required string Url { get; set; }
    public required string RequestBody { get; set; }
    public int? ResponseStatus { get; set; }
    public string? ResponseBody { get; set; }
    public string? Error { get; set; }
    public int LatencyMs { get; set; }
    public bool Replay { get; set; }
}

public static class WebhookMessageStatuses
{
    public const string Pending = "pending";
    public const string Delivered = "delivered";
    public const string Failed = "failed";
}

internal sealed class WebhookEndpointConfiguration : IEntityTypeConfiguration<WebhookEndpoint>
{
    public void Configure(EntityTypeBuilder<WebhookEndpoint> b)
    {
        b.ToTable("webhook_endpoints");
        b.Property(e => e.Url).HasMaxLength(2048);
        b.Property(e => e.Description).HasMaxLength(500);
        b.Property(e => e.State).HasMaxLength(24);
        b.Property(e => e.DisabledReason).HasMaxLength(1000);
        b.HasIndex(e => e.TenantId);
    }
}

internal sealed class WebhookMessageConfiguration : IEntityTypeConfiguration<WebhookMessage>
{
    public void Configure(EntityTypeBuilder<WebhookMessage> b)
    {
        b.ToTable("webhook_messages");
        b.Property(m => m.Id).UseIdentityAlwaysColumn();
        b.Property(m => m.WebhookId).HasMaxLength(40);
        b.Property(m => m.EventType).HasMaxLength(32);
        b.Property(m => m.Status).HasMaxLength(16);
        b.Property(m => m.LastError).HasMaxLength(1000);
        b.HasIndex(m => m.WebhookId).IsUnique();
        // The dispatcher's claim: due pending messages only.
        b.HasIndex(m => m.NextAttemptAt).HasFilter("status = 'pending'").HasDatabaseName("ix_webhook_messages_due");
        b.HasIndex(m => new { m.EndpointId, m.Id });
        b.HasIndex(m => m.CreatedAt);
        b.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(m => m.EndpointId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class WebhookAttemptConfiguration : IEntityTypeConfiguration<WebhookAttempt>
{
    public void Configure(EntityTypeBuilder<WebhookAttempt> b)
    {
        b.ToTable("webhook_attempts");
        b.Property(a => a.Id).UseIdentityAlwaysColumn();
        b.Property(a => a.WebhookId).HasMaxLength(40);
        b.Property(a => a.EventType).HasMaxLength(32);
        b.Property(a => a.Url).HasMaxLength(2048);
        b.Property(a => a.ResponseBody).HasMaxLength(1024);
        b.Property(a => a.Error).HasMaxLength(1000);
        b.HasIndex(a => new { a.EndpointId, a.Id });
        // The webhook gateway's list of all the tenant's attempts.
        b.HasIndex(a => new { a.TenantId, a.Id });
        b.HasIndex(a => a.AttemptedAt);
        b.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(a => a.EndpointId).OnDelete(DeleteBehavior.Cascade);
    }
}
