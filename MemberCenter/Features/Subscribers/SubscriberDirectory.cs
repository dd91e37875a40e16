using System.Globalization;
using System.Text;
using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Npgsql;

namespace MemberCenter.Features.Subscribers;

/// <summary>
/// The tenant's subscribers as the console reads them: search by address prefix, a list's subscribers, one subscriber
/// with its consent trail, and a list's CSV export. Preferences and consent details only when <c>content</c> is true
/// (newsletter:content.read).
/// </summary>
public sealed class SubscriberDirectory(MemberCenterDbContext db, NpgsqlDataSource dataSource)
{
    public const int MaxLimit = 100;
    public const int ConsentTrailLimit = 100;

    public Task<bool> ListExistsAsync(Guid tenantId, Guid listId, CancellationToken ct) =>
        db.MailingLists.AnyAsync(l => l.Id == listId && l.TenantId == tenantId, ct);

    /// <summary>Where a cursor subscriber sits in address order; null when it is not the tenant's (or was erased).</summary>
    public Task<string?> CursorKeyAsync(Guid tenantId, Guid subscriberId, CancellationToken ct) =>
        db.Subscribers.Where(p => p.Id == subscriberId && p.TenantId == tenantId).Select(p => p.EmailKey).FirstOrDefaultAsync(ct);

    /// <summary>
    /// Keyset pages in byte order of the lower-cased address (the index ix_subscribers_tenant_id_email_key_c): a prefix
    /// is the range [prefix, successor(prefix)), so a page costs an index range scan whatever the tenant's size. The SQL
    /// holds only the conditions given, so each shape gets a plan that uses the range.
    /// </summary>
    public async Task<SubscriberPage> SearchAsync(Guid tenantId, string? prefix, Guid? listId, SubscriptionStatus? status, int limit, string? afterKey,
        CancellationToken ct)
    {
        var sql = new StringBuilder("SELECT p.id, p.email, p.email_key, p.created_at, p.undeliverable_at FROM subscribers p WHERE p.tenant_id = $1");
        var parameters = new List<object> { tenantId };
        string Next(object value)
        {
            parameters.Add(value);
            return "$" + parameters.Count.ToString(CultureInfo.InvariantCulture);
        }
        if (!string.IsNullOrEmpty(prefix))
        {
            sql.Append(" AND p.email_key COLLATE \"C\" >= ").Append(Next(prefix));
            if (Successor(prefix) is { } upper)
            {
                sql.Append(" AND p.email_key COLLATE \"C\" < ").Append(Next(upper));
            }
        }
        if (afterKey is not null)
        {
            sql.Append(" AND p.email_key COLLATE \"C\" > ").Append(Next(afterKey));
        }
        if (listId is not null || status is not null)
        {
            sql.Append(" AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.subscriber_id = p.id");
            if (listId is { } l)
            {
                sql.Append(" AND s.list_id = ").Append(Next(l));
            }
            if (status is { } st)
            {
                sql.Append(" AND s.status = ").Append(Next((int)st));
            }
            sql.Append(')');
        }
        sql.Append(" ORDER BY p.email_key COLLATE \"C\" LIMIT ").Append(Next(limit + 1));

        var rows = new List<(Guid Id, string Email, DateTimeOffset CreatedAt, DateTimeOffset? UndeliverableAt)>(limit + 1);
        await using (var command = dataSource.CreateCommand(sql.ToString()))
        {
            foreach (var value in parameters)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            }
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                rows.Add((reader.GetGuid(0), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(3),
                    reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4)));
            }
        }
        var more = rows.Count > limit;
        if (more)
        {
            rows.RemoveAt(rows.Count - 1);
        }
        var ids = rows.Select(r => r.Id).ToArray();
        var subscriptions = (await db.Subscriptions.AsNoTracking().Where(s => ids.Contains(s.SubscriberId))
                .Select(s => new { s.SubscriberId, s.ListId, s.Status, s.CreatedAt }).ToListAsync(ct))
            .ToLookup(s => s.SubscriberId);
        var items = rows.Select(r => new SubscriberSummary(r.Id.ToString(), r.Email, r.CreatedAt, r.UndeliverableAt,
            subscriptions[r.Id].OrderBy(s => s.CreatedAt).Select(s => new SubscriberListStatus(s.ListId.ToString(), SubscriptionService.StatusName(s.Status))).ToList())).ToList();
        return new SubscriberPage(items, more ? rows[^1].Id.ToString() : null);
    }

    /// <summary>The least string greater than every string that starts with <paramref name="prefix"/> in "C" order.</summary>
    public static string? Successor(string prefix) => Newsletter.ServiceDefaults.Data.CodePointOrder.Successor(prefix);

    /// <summary>A list's subscriptions, newest subscriber first (subscriber ids are time-ordered UUIDv7), keyset by subscriber id.</summary>
    public async Task<ListSubscriberPage> ListAsync(Guid listId, SubscriptionStatus? status, int limit, Guid? after, bool content, CancellationToken ct)
    {
        var query = from s in db.Subscriptions.AsNoTracking()
                    join p in db.Subscribers on s.SubscriberId equals p.Id
                    where s.ListId == listId
                    select new { s, p.Email };
        if (status is { } st)
        {
            query = query.Where(x => x.s.Status == st);
        }
        if (after is { } a)
        {
            query = query.Where(x => x.s.SubscriberId.CompareTo(a) < 0);
        }
        var rows = await query.OrderByDescending(x => x.s.SubscriberId).Take(limit + 1).ToListAsync(ct);
        var more = rows.Count > limit;
        if (more)
        {
            rows.RemoveAt(rows.Count - 1);
        }
        return new ListSubscriberPage(listId.ToString(),
            rows.Select(x => new ListSubscriber(x.s.SubscriberId.ToString(), x.Email, SubscriptionService.StatusName(x.s.Status), x.s.CreatedAt, x.s.UpdatedAt,
                x.s.ConfirmedAt, x.s.UnsubscribedAt, content ? SubscriptionService.ParsePreferences(x.s.Preferences) : null)).ToList(),
            more ? rows[^1].s.SubscriberId.ToString() : null);
    }

    public async Task<SubscriberDetail?> DetailAsync(Guid tenantId, EmailAddress email, bool content, CancellationToken ct)
    {
        var subscriber = await db.Subscribers.AsNoTracking().FirstOrDefaultAsync(p => p.TenantId == tenantId && p.EmailKey == email.Key, ct);
        if (subscriber is null)
        {
            return null;
        }
        var subscriptions = await (from s in db.Subscriptions.AsNoTracking()
                                   join l in db.MailingLists on s.ListId equals l.Id
                                   where s.SubscriberId == subscriber.Id
                                   orderby s.CreatedAt
                                   select new { s, l.Name }).ToListAsync(ct);
        var consent = await db.ConsentRecords.AsNoTracking()
            .Where(c => c.SubscriberId == subscriber.Id && c.TenantId == tenantId)
            .OrderByDescending(c => c.OccurredAt).ThenByDescending(c => c.Id)
            .Take(ConsentTrailLimit + 1).ToListAsync(ct);
        var truncated = consent.Count > ConsentTrailLimit;
        return new SubscriberDetail(subscriber.Id.ToString(), subscriber.Email, subscriber.CreatedAt, subscriber.UndeliverableAt, subscriber.UndeliverableReason,
            subscriptions.Select(x => new SubscriberSubscription(x.s.ListId.ToString(), x.Name, SubscriptionService.StatusName(x.s.Status), x.s.CreatedAt,
                x.s.UpdatedAt, x.s.ConfirmedAt, x.s.UnsubscribedAt, content ? SubscriptionService.ParsePreferences(x.s.Preferences) : null)).ToList(),
            consent.Take(ConsentTrailLimit).Select(c => ToEntry(c, content)).ToList(),
            truncated);
    }

    private static ConsentEntry ToEntry(ConsentRecord c, bool content)
    {
        JsonElement? details = null;
        string? note = null;
        if (c.Details is not null)
        {
            var root = JsonDocument.Parse(c.Details).RootElement.Clone();
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("note", out var n) && n.ValueKind == JsonValueKind.String)
            {
                note = n.GetString();
            }
            // Details of a subscribe or preference change hold preferences: content, like the preferences themselves.
            details = content ? root : null;
        }
        return new ConsentEntry(c.ListId.ToString(), c.Action, c.Source, note, c.IpAddress, c.OccurredAt, details);
    }

    /// <summary>
    /// Writes the list's subscriptions as CSV to <paramref name="output"/> in keyset pages of <see cref="ExportPage"/>
    /// rows, flushing each: memory stays constant and no transaction stays open however long the download takes.
    /// </summary>
    public async Task ExportAsync(Guid listId, SubscriptionStatus? status, bool content, Stream output, CancellationToken ct)
    {
        await using var writer = new StreamWriter(output, new UTF8Encoding(false), 64 * 1024);
        await writer.WriteAsync(content ? "email,status,subscribed_at,confirmed_at,unsubscribed_at,preferences\r\n" : "email,status,subscribed_at,confirmed_at,unsubscribed_at\r\n");
        Guid? after = null;
        while (true)
        {
            var sql = "SELECT s.subscriber_id, p.email, s.status, s.created_at, s.confirmed_at, s.unsubscribed_at, "
                      + (content ? "s.preferences::text" : "NULL::text")
                      + " FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id WHERE s.list_id = $1"
                      + (status is null ? "" : " AND s.status = $3")
                      + (after is null ? "" : " AND s.subscriber_id > $2")
                      + " ORDER BY s.subscriber_id LIMIT " + ExportPage.ToString(CultureInfo.InvariantCulture);
            await using var command = dataSource.CreateCommand(sql);
            command.Parameters.Add(new NpgsqlParameter { Value = listId });
            command.Parameters.Add(new NpgsqlParameter { Value = after ?? Guid.Empty });
            command.Parameters.Add(new NpgsqlParameter { Value = (int)(status ?? 0) });
            var count = 0;
            await using (var reader = await command.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    count++;
                    after = reader.GetGuid(0);
                    await writer.WriteAsync(Cell(reader.GetString(1)));
                    await writer.WriteAsync(',');
                    await writer.WriteAsync(SubscriptionService.StatusName((SubscriptionStatus)reader.GetInt32(2)));
                    await writer.WriteAsync(',');
                    await writer.WriteAsync(Time(reader.GetFieldValue<DateTimeOffset>(3)));
                    await writer.WriteAsync(',');
                    await writer.WriteAsync(reader.IsDBNull(4) ? "" : Time(reader.GetFieldValue<DateTimeOffset>(4)));
                    await writer.WriteAsync(',');
                    await writer.WriteAsync(reader.IsDBNull(5) ? "" : Time(reader.GetFieldValue<DateTimeOffset>(5)));
                    if (content)
                    {
                        await writer.WriteAsync(',');
                        await writer.WriteAsync(Cell(reader.IsDBNull(6) ? "{}" : reader.GetString(6)));
                    }
                    await writer.WriteAsync("\r\n");
                }
            }
            await writer.FlushAsync(ct);
            if (count < ExportPage)
            {
                return;
            }
        }
    }

    public const int ExportPage = 5000;

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static string Cell(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") < 0 ? value : "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
