using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// A subscription that stopped being sendable (unsubscribed, address undeliverable, erased), for Send Engine's change
/// feed (<c>GET /internal/lists/{list_id}/changes</c>). Ids of one list are in commit order: see
/// <see cref="SubscriptionChanges.RecordAsync"/>. Holds no address, so an erasure leaves nothing behind here.
/// </summary>
public sealed class SubscriptionChange
{
    public long Id { get; set; }
    public Guid ListId { get; set; }
    public Guid SubscriberId { get; set; }
    public required string Change { get; set; }
    public DateTimeOffset OccurredAt { get; set; }
}

public static class SubscriptionChangeKinds
{
    public const string Unsubscribed = "unsubscribed";
    public const string Undeliverable = "undeliverable";
    /// <summary>The subscriber was erased (DELETE /api/subscribers/{email}); the feed then has no email for it.</summary>
    public const string Erased = "erased";
}

public static class SubscriptionChanges
{
    // Two-int advisory keys do not overlap the single-bigint ones used for key rotation.
    private const int ChangeLockClass = 0x4E4C_4348; // "NLCH"

    /// <summary>
    /// Appends changes inside the caller's transaction, as its last statements. A sequence alone does not give commit
    /// order (a lower id can commit after a higher one was read, and a reader's cursor would skip it), so each list's
    /// transaction-scoped advisory lock is taken first and held until commit: ids of one list are then allocated and
    /// committed one transaction after the other, and whenever a reader sees an id, every lower id of that list is
    /// already committed. Lists are locked in one order, so two writers never deadlock on them.
    /// </summary>
    public static async Task RecordAsync(MemberCenterDbContext db, IReadOnlyCollection<(Guid ListId, Guid SubscriberId, string Change, DateTimeOffset At)> changes,
        CancellationToken ct)
    {
        if (changes.Count == 0)
        {
            return;
        }
        if (db.Database.CurrentTransaction is null)
        {
            throw new InvalidOperationException("Subscription changes are recorded inside the transaction that makes them.");
        }
        foreach (var list in changes.Select(c => c.ListId).Distinct().Order())
        {
            var key = list.ToString();
            await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({ChangeLockClass}, hashtext({key}))", ct);
        }
        var lists = changes.Select(c => c.ListId).ToArray();
        var subscribers = changes.Select(c => c.SubscriberId).ToArray();
        var kinds = changes.Select(c => c.Change).ToArray();
        var at = changes.Select(c => c.At.ToUniversalTime()).ToArray();
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO subscription_changes (list_id, subscriber_id, change, occurred_at)
            SELECT * FROM unnest({lists}::uuid[], {subscribers}::uuid[], {kinds}::text[], {at}::timestamptz[])
            """, ct);
    }
}

internal sealed class SubscriptionChangeConfiguration : IEntityTypeConfiguration<SubscriptionChange>
{
    public void Configure(EntityTypeBuilder<SubscriptionChange> b)
    {
        b.ToTable("subscription_changes");
        b.Property(c => c.Change).HasMaxLength(20);
        b.HasIndex(c => new { c.ListId, c.Id });
        b.HasIndex(c => c.OccurredAt); // retention sweep
    }
}
