using Npgsql;

namespace SendEngine.Features.Reputation;

/// <summary>A tenant's sending-limit window (and the warming sender domains also counted) a read was counted in.</summary>
internal sealed record LimitSlot(Guid TenantId, DateTimeOffset WindowStart, string[] Domains);

/// <summary>
/// One delivery run's reservations in its tenant's sending-limit windows, and the one owner of what becomes of them. A
/// row read for delivery is reserved (<see cref="SendingLimits.ClaimAsync"/>); its <c>sending</c> mark uses the
/// reservation, which stays used once the result is recorded. Every row read and not marked (skipped by the claimer, a
/// mark that did not take it, a batch left pending for a pause, rows still unmarked when the run ends) and every
/// marked row handed back unattempted returns its reservation to the window it was counted in, so the windows count the
/// rows marked. Nothing is held, and nothing costs, for a tenant without limits.
/// </summary>
internal sealed class LimitReservations
{
    private readonly Lock _gate = new();
    // Read, mark not yet taken.
    private readonly Dictionary<long, LimitSlot> _reserved = [];
    // Marked, result not yet recorded (an unmark returns it).
    private readonly Dictionary<long, LimitSlot> _used = [];
    private volatile bool _any;

    /// <summary>Whether anything was ever reserved (false for a tenant without limits: every call is then free).</summary>
    public bool Holding => _any;

    /// <summary>Rows just read and counted in <paramref name="slot"/> (after the count committed).</summary>
    public void Reserve(IEnumerable<long> ids, LimitSlot slot)
    {
        lock (_gate)
        {
            foreach (var id in ids)
            {
                _reserved[id] = slot;
            }
            _any = true;
        }
    }

    /// <summary>
    /// The mark of <paramref name="tried"/> took <paramref name="taken"/>: their reservations are used. Returns the
    /// reservations of the others (not taken), which are no longer held, for <see cref="ReturnAsync(NpgsqlConnection, LimitSlot[], CancellationToken)"/>.
    /// </summary>
    public LimitSlot[] Marked(IEnumerable<long> tried, Func<long, bool> taken)
    {
        if (!_any)
        {
            return [];
        }
        List<LimitSlot>? back = null;
        lock (_gate)
        {
            foreach (var id in tried)
            {
                if (_reserved.Remove(id, out var slot))
                {
                    if (taken(id))
                    {
                        _used[id] = slot;
                    }
                    else
                    {
                        (back ??= []).Add(slot);
                    }
                }
            }
        }
        return back is null ? [] : [.. back];
    }

    /// <summary>The results of <paramref name="ids"/> are recorded: their reservations stay used for good.</summary>
    public void Recorded(IEnumerable<long> ids)
    {
        if (!_any)
        {
            return;
        }
        lock (_gate)
        {
            foreach (var id in ids)
            {
                _used.Remove(id);
            }
        }
    }

    /// <summary>
    /// <paramref name="ids"/> will not be marked by this run (read and skipped, left pending) or were handed back
    /// unmarked: takes their reservations for <see cref="ReturnAsync(NpgsqlConnection, LimitSlot[], CancellationToken)"/>.
    /// </summary>
    public LimitSlot[] Take(IEnumerable<long> ids)
    {
        if (!_any)
        {
            return [];
        }
        List<LimitSlot>? back = null;
        lock (_gate)
        {
            foreach (var id in ids)
            {
                if (_reserved.Remove(id, out var slot) || _used.Remove(id, out slot))
                {
                    (back ??= []).Add(slot);
                }
            }
        }
        return back is null ? [] : [.. back];
    }

    /// <summary>The run has ended: takes the reservations of every row it read and never marked.</summary>
    public LimitSlot[] TakeUnmarked()
    {
        if (!_any)
        {
            return [];
        }
        lock (_gate)
        {
            LimitSlot[] back = [.. _reserved.Values];
            _reserved.Clear();
            return back;
        }
    }

    /// <summary><see cref="Take"/>, then gives those reservations back.</summary>
    public Task ReturnAsync(NpgsqlConnection conn, IEnumerable<long> ids, CancellationToken ct) => ReturnAsync(conn, Take(ids), ct);

    /// <summary>
    /// Gives reservations back, each to the window it was counted in (<c>send_counters</c>, never below zero). No round
    /// trip when there is none.
    /// </summary>
    public static async Task ReturnAsync(NpgsqlConnection conn, LimitSlot[] slots, CancellationToken ct)
    {
        if (slots.Length == 0)
        {
            return;
        }
        // One row per counter: an UPDATE … FROM applies only one of several source rows matching the same target.
        var counts = slots
            .SelectMany(s => s.Domains.Select(d => (s.TenantId, Domain: d, s.WindowStart)))
            .GroupBy(k => k).Select(g => (g.Key, Count: g.LongCount())).ToList();
        await Data.Sql.ExecuteAsync(conn, """
            UPDATE send_counters c SET messages = GREATEST(c.messages - d.n, 0)
            FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[]) AS d(tenant_id, domain, window_start, n)
            WHERE c.tenant_id = d.tenant_id AND c.domain = d.domain AND c.window_start = d.window_start
            """, ct, counts.Select(c => c.Key.TenantId).ToArray(), counts.Select(c => c.Key.Domain).ToArray(),
            counts.Select(c => c.Key.WindowStart).ToArray(), counts.Select(c => c.Count).ToArray());
    }
}
