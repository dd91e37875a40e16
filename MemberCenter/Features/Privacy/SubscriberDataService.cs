using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Privacy;

namespace MemberCenter.Features.Privacy;

/// <summary>One address's personal data for its tenant: export (Art. 15, 20) and erasure (Art. 17) across both services.</summary>
public sealed class SubscriberDataService(
    MemberCenterDbContext db,
    SubscriptionService subscriptions,
    SendEngineClient sendEngine,
    AddressHasher hasher,
    WakeSignal<SendEngineRequestDispatcher> dispatcher,
    TimeProvider clock)
{
    /// <summary>
    /// Everything both services hold about the address for the tenant; null when neither holds anything.
    /// </summary>
    /// <exception cref="SendEngineException">Send Engine could not answer: no partial export is given.</exception>
    public async Task<SubscriberExport?> ExportAsync(Guid tenantId, EmailAddress email, CancellationToken ct)
    {
        var subscriber = await db.Subscribers.AsNoTracking().FirstOrDefaultAsync(p => p.TenantId == tenantId && p.EmailKey == email.Key, ct);
        var sendEngineData = await sendEngine.ExportAsync(tenantId, email.Key, ct);
        // The consent trail includes the anonymised proof of an earlier erasure of this address (found by its keyed hash).
        var hash = hasher.Hash(email.Key);
        var subscriberId = subscriber?.Id;
        var consent = await db.ConsentRecords.AsNoTracking()
            .Where(c => c.TenantId == tenantId && (c.SubscriberId == subscriberId || c.SubjectHash == hash)).OrderBy(c => c.Id).ToListAsync(ct);
        if (subscriber is null && sendEngineData.IsEmpty && consent.Count == 0)
        {
            return null;
        }
        var subscriptionRows = subscriber is null ? [] : await (from s in db.Subscriptions
                                                                join l in db.MailingLists on s.ListId equals l.Id
                                                                where s.SubscriberId == subscriber.Id
                                                                orderby s.CreatedAt
                                                                select new { s, l.Name }).AsNoTracking().ToListAsync(ct);
        return new SubscriberExport(
            tenantId.ToString(),
            subscriber?.Email ?? email.Value,
            clock.GetUtcNow(),
            subscriber is null ? null : new ExportedSubscriber(subscriber.Id.ToString(), subscriber.Email, subscriber.CreatedAt, subscriber.UndeliverableAt, subscriber.UndeliverableReason),
            subscriptionRows.Select(r => new ExportedSubscription(r.s.ListId.ToString(), r.Name, SubscriptionService.StatusName(r.s.Status),
                SubscriptionService.ParsePreferences(r.s.Preferences), r.s.CreatedAt, r.s.UpdatedAt, r.s.ConfirmedAt, r.s.UnsubscribedAt)).ToList(),
            consent.Select(c => new ExportedConsent(c.ListId.ToString(), c.Action, c.Source, c.IpAddress, c.UserAgent, c.OccurredAt,
                c.Details is null ? null : JsonDocument.Parse(c.Details).RootElement.Clone())).ToList(),
            sendEngineData);
    }

    /// <summary>
    /// Erases the address in Member Center now and queues Send Engine's part (<see cref="SendEngineRequestDispatcher"/>),
    /// all in one transaction: the subscriber, its subscriptions, tokens and outbox rows are deleted; its consent records
    /// stay as anonymised proof (IP, user agent and details removed, the keyed hash of the address added) with one
    /// <c>erased</c> record per subscription; each confirmed subscription enters the change feed as <c>erased</c>; the
    /// hashed suppression is recorded; rows of CSV imports not yet applied are dropped. Repeating it finds nothing to delete and queues Send Engine's part again, which
    /// Send Engine treats as done.
    /// </summary>
    public async Task<ErasureResponse> EraseAsync(Guid tenantId, EmailAddress email, RequestOrigin origin, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var hash = hasher.Hash(email.Key);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscriber = (await db.Subscribers.FromSql($"SELECT * FROM subscribers WHERE tenant_id = {tenantId} AND email_key = {email.Key} FOR UPDATE")
            .ToListAsync(ct)).SingleOrDefault();
        if (subscriber is not null)
        {
            var ids = await db.Subscriptions.Where(s => s.SubscriberId == subscriber.Id).OrderBy(s => s.ListId).Select(s => s.Id).ToListAsync(ct);
            foreach (var id in ids)
            {
                var subscription = await subscriptions.LockAsync(id, ct);
                if (subscription.Status == SubscriptionStatus.Confirmed && subscriber.UndeliverableAt is null)
                {
                    subscriptions.AddChange(subscription.ListId, subscriber.Id, SubscriptionChangeKinds.Erased, now);
                }
                subscriptions.AddConsent(tenantId, subscription.ListId, subscriber.Id, ConsentActions.Erased, origin, now, null);
            }
            await db.SaveChangesAsync(ct);
            await db.ConsentRecords.Where(c => c.TenantId == tenantId && c.SubscriberId == subscriber.Id).ExecuteUpdateAsync(u => u
                .SetProperty(c => c.IpAddress, (string?)null)
                .SetProperty(c => c.UserAgent, (string?)null)
                .SetProperty(c => c.Details, (string?)null)
                .SetProperty(c => c.SubjectHash, hash), ct);
            // Subscriptions, their tokens and outbox rows go with it (ON DELETE CASCADE).
            await db.Subscribers.Where(p => p.Id == subscriber.Id).ExecuteDeleteAsync(ct);
        }
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO erased_addresses (tenant_id, address_hash, erased_at) VALUES ({tenantId}, {hash}, {now})
            ON CONFLICT (tenant_id, address_hash) DO UPDATE SET erased_at = EXCLUDED.erased_at
            """, ct);
        // Rows of a CSV import not yet applied would subscribe the address again: they go too, counted as skipped.
        await db.Database.ExecuteSqlAsync($"""
            WITH gone AS (
                DELETE FROM subscriber_import_rows r USING subscriber_imports i
                WHERE r.import_id = i.id AND i.tenant_id = {tenantId} AND r.email_key = {email.Key}
                RETURNING r.import_id
            )
            UPDATE subscriber_imports i SET processed = processed + g.n, skipped = skipped + g.n
            FROM (SELECT import_id, count(*)::int AS n FROM gone GROUP BY import_id) g WHERE i.id = g.import_id
            """, ct);
        db.SendEngineRequests.Add(new SendEngineRequest
        {
            TenantId = tenantId,
            Kind = SendEngineRequestKinds.Erase,
            Email = email.Key,
            AddressHash = hash,
            CreatedAt = now,
            NextAttemptAt = now,
        });
        await db.SaveChangesAsync(ct);
        await subscriptions.FlushChangesAsync(ct);
        await tx.CommitAsync(ct);
        dispatcher.Notify();
        return new ErasureResponse(tenantId.ToString(), email.Value, ErasureStates.Erased, ErasureStates.Pending, now);
    }
}
