using Microsoft.Extensions.Options;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;

namespace SendEngine.Features.Reputation;

/// <summary>A tenant's limits as they apply now: null is unlimited.</summary>
public sealed record EffectiveLimits(int? PerHour, int? PerDay, long? Warmup, bool LimitsSet)
{
    /// <summary>The daily limit with the warm-up applied.</summary>
    public long? Daily => (PerDay, Warmup) switch
    {
        (null, null) => null,
        ({ } d, null) => d,
        (null, { } w) => w,
        ({ } d, { } w) => Math.Min(d, w),
    };

    public bool Unlimited => PerHour is null && Daily is null;
}

/// <summary>
/// The per-tenant sending limits of bulk mail (messages per hour and per day, and the warm-up of a new tenant and of a
/// newly verified sender domain), enforced across every Send Engine process by a counter row per tenant (and warming
/// domain) and window in PostgreSQL: a read for delivery locks the window's rows, reads at most what is left of the
/// job's due recipients, and reserves what it read, in one transaction, so two processes can never both take the last
/// slot. What becomes of each reservation (used by the row's <c>sending</c> mark, or given back for a row not marked) is
/// the run's <see cref="LimitReservations"/>' alone, so the counter ends as the rows marked in the window and two
/// runners that read the same row count it once. The limit is never exceeded: every mark is covered by a reservation.
/// A tenant without limits pays one primary-key read per batch and nothing per mark. Transactional mail is neither
/// counted nor held (docs/deliverability.md).
/// </summary>
public sealed class SendingLimits(IOptions<SendingLimitOptions> options)
{
    /// <summary>The start and end of the limit window (an hour) holding <paramref name="now"/>.</summary>
    public (DateTimeOffset Start, DateTimeOffset End) Window(DateTimeOffset now) => Align(now, options.Value.Window);

    /// <summary>The start and end of the day (24 windows) holding <paramref name="now"/>.</summary>
    public (DateTimeOffset Start, DateTimeOffset End) Day(DateTimeOffset now) => Align(now, options.Value.Window * 24);

    private static (DateTimeOffset, DateTimeOffset) Align(DateTimeOffset now, TimeSpan length)
    {
        var start = new DateTimeOffset(now.UtcTicks - now.UtcTicks % length.Ticks, TimeSpan.Zero);
        return (start, start + length);
    }

    /// <summary>The limits of a tenant given its row's settings (or none).</summary>
    public EffectiveLimits Effective(bool limitsSet, int? perHour, int? perDay, DateTimeOffset? firstSendAt, DateTimeOffset now)
    {
        var o = options.Value;
        if (!limitsSet)
        {
            (perHour, perDay) = (o.MessagesPerHour, o.MessagesPerDay);
        }
        long? warmup = null;
        if (o.WarmupFirstDay is { } first)
        {
            var day = firstSendAt is { } f ? (int)Math.Max(0, (now - f).Ticks / (o.Window * 24).Ticks) : 0;
            var limit = day >= 40 ? long.MaxValue : first * (1L << day);
            if (perDay is { } d ? limit < d : day < o.WarmupDays)
            {
                warmup = limit;
            }
        }
        return new EffectiveLimits(perHour, perDay, warmup, limitsSet);
    }

    /// <summary>
    /// Reads up to <paramref name="limit"/> due recipients of the job for delivery (<see cref="RecipientStore.ReadDueAsync"/>,
    /// <paramref name="held"/> the runner's rows not yet marked) within its tenant's limits, and within the warm-up
    /// of <paramref name="senderDomain"/> (the job's verified from domain, null when it has none) counted from its
    /// verification; the rows counted are the run's <paramref name="reservations"/>. Returns the batch, or an empty
    /// batch and the time the limit lets more out (the job then waits, still sending).
    /// </summary>
    internal async Task<(List<Claimed> Batch, DateTimeOffset? ThrottledUntil)> ClaimAsync(NpgsqlConnection conn, DeliveryJob job, string? senderDomain,
        DateTimeOffset now, int limit, long[] held, LimitReservations reservations, long openFrom, CancellationToken ct)
    {
        bool limitsSet = false;
        int? perHour = null, perDay = null;
        DateTimeOffset? firstSendAt = null;
        await using (var cmd = Sql.Command(conn, "SELECT limits_set, messages_per_hour, messages_per_day, first_send_at FROM tenant_reputation WHERE tenant_id = $1", job.TenantId))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            if (await reader.ReadAsync(ct))
            {
                limitsSet = reader.GetBoolean(0);
                perHour = reader.IsDBNull(1) ? null : reader.GetInt32(1);
                perDay = reader.IsDBNull(2) ? null : reader.GetInt32(2);
                firstSendAt = reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3);
            }
        }
        var limits = Effective(limitsSet, perHour, perDay, firstSendAt, now);
        // A domain verified recently warms up like a new tenant, from its verification: receivers judge a new DKIM
        // domain on its own, whatever the tenant's history. Its share is counted apart (send_counters.domain).
        long? domainWarmup = null;
        if (options.Value.WarmupFirstDay is not null && senderDomain is not null)
        {
            await using var cmd = Sql.Command(conn,
                "SELECT verified_at FROM sender_domains WHERE tenant_id = $1 AND domain = $2 AND status = 'verified' AND verified_at IS NOT NULL",
                job.TenantId, senderDomain);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            if (await reader.ReadAsync(ct))
            {
                domainWarmup = Effective(limitsSet, perHour, perDay, reader.GetFieldValue<DateTimeOffset>(0), now).Warmup;
            }
        }
        if (limits.Unlimited && options.Value.WarmupFirstDay is null)
        {
            return (await RecipientStore.ReadDueAsync(conn, job.Id, now, limit, held, openFrom, ct), null);
        }

        var window = Window(now);
        var day = Day(now);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // The window's row, locked until the commit: every process claiming for this tenant waits here in turn.
        var inWindow = await Sql.ScalarAsync<long>(conn, """
            INSERT INTO send_counters AS c (tenant_id, domain, window_start, messages) VALUES ($1, $2, $3, 0)
            ON CONFLICT (tenant_id, domain, window_start) DO UPDATE SET messages = c.messages
            RETURNING messages
            """, ct, job.TenantId, "", window.Start);
        var inDay = await DayCountAsync(conn, job.TenantId, "", day, ct);
        long allowed = limit;
        DateTimeOffset? until = null;
        if (limits.PerHour is { } h && h - inWindow < allowed)
        {
            allowed = h - inWindow;
            until = window.End;
        }
        if (limits.Daily is { } d && d - inDay < allowed)
        {
            allowed = d - inDay;
            until = day.End;
        }
        if (domainWarmup is { } w)
        {
            // The domain's row is locked after the tenant's, always in this order: no deadlock between claimers.
            await Sql.ExecuteAsync(conn, """
                INSERT INTO send_counters AS c (tenant_id, domain, window_start, messages) VALUES ($1, $2, $3, 0)
                ON CONFLICT (tenant_id, domain, window_start) DO UPDATE SET messages = c.messages
                """, ct, job.TenantId, senderDomain!, window.Start);
            var domainInDay = await DayCountAsync(conn, job.TenantId, senderDomain!, day, ct);
            if (w - domainInDay < allowed)
            {
                allowed = w - domainInDay;
                until = day.End;
            }
        }
        if (allowed <= 0)
        {
            await tx.RollbackAsync(ct);
            return ([], until);
        }
        var batch = await RecipientStore.ReadDueAsync(conn, job.Id, now, (int)allowed, held, openFrom, ct);
        LimitSlot? slot = null;
        if (batch.Count > 0)
        {
            slot = new LimitSlot(job.TenantId, window.Start, domainWarmup is null ? [""] : ["", senderDomain!]);
            await Sql.ExecuteAsync(conn, "UPDATE send_counters SET messages = messages + $4 WHERE tenant_id = $1 AND domain = ANY($2) AND window_start = $3",
                ct, job.TenantId, slot.Domains, window.Start, batch.Count);
            if (firstSendAt is null)
            {
                await Sql.ExecuteAsync(conn, ReputationStore.EnsureRowSql, ct, job.TenantId, now);
                await Sql.ExecuteAsync(conn, "UPDATE tenant_reputation SET first_send_at = $2 WHERE tenant_id = $1 AND first_send_at IS NULL",
                    ct, job.TenantId, now);
            }
        }
        // Not cancellable: a commit cancelled after it reached the server would leave a count nobody holds.
        await tx.CommitAsync(CancellationToken.None);
        if (slot is not null)
        {
            // Held only once counted: a count that did not commit must never be given back.
            reservations.Reserve(batch.Select(r => r.Id), slot);
        }
        return (batch, null);
    }

    private static async Task<long> DayCountAsync(NpgsqlConnection conn, Guid tenantId, string domain, (DateTimeOffset Start, DateTimeOffset End) day,
        CancellationToken ct) =>
        await Sql.ScalarAsync<long>(conn,
            "SELECT COALESCE(sum(messages), 0)::bigint FROM send_counters WHERE tenant_id = $1 AND domain = $2 AND window_start >= $3 AND window_start < $4",
            ct, tenantId, domain, day.Start, day.End);
}
