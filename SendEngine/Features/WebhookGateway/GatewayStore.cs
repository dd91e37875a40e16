using Newsletter.Contracts.Webhooks;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Features.WebhookGateway;

/// <summary>Reads of the gateway log: a tenant's (tenant_id = t) or the platform's (tenant_id IS NULL).</summary>
public sealed class GatewayStore(NpgsqlDataSource db)
{
    /// <summary>The summary columns; the result is summed over the entry's events, found by their id range (email_events'
    /// primary key) and checked by gateway_entry_id (concurrent writers may interleave ids inside a range).</summary>
    private const string Select = """
        SELECT e.id, e.tenant_id, e.received_at, e.source, e.method, e.path, e.verification, e.status_code, e.events, e.event_types,
            x.stored, x.pending, x.held, x.applied, e.seq
        FROM webhook_gateway_entries e
        LEFT JOIN LATERAL (
            SELECT count(*) AS stored, count(*) FILTER (WHERE v.outcome IS NULL) AS pending,
                count(*) FILTER (WHERE v.outcome = 'held') AS held, count(*) FILTER (WHERE v.outcome LIKE 'applied%') AS applied
            FROM email_events v WHERE v.id BETWEEN e.first_event_id AND e.last_event_id AND v.gateway_entry_id = e.id) x ON true
        """;

    // $1 is the tenant; the platform log names it too (always null) so that the parameter numbers stay the same.
    private static string Scope(Guid? tenantId) => tenantId is null ? "e.tenant_id IS NULL AND $1::uuid IS NULL" : "e.tenant_id = $1";

    public async Task<GatewayEntryPage> ListAsync(Guid? tenantId, Guid? before, string? verification, int limit, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, $"""
            {Select}
            WHERE {Scope(tenantId)} AND ($2::uuid IS NULL OR e.id < $2) AND ($3::text IS NULL OR e.verification = $3)
            ORDER BY e.id DESC LIMIT $4
            """, (object?)tenantId ?? DBNull.Value, (object?)before ?? DBNull.Value, (object?)verification ?? DBNull.Value, limit);
        var items = new List<GatewayEntrySummary>();
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                items.Add(ReadSummary(reader).Summary);
            }
        }
        return new GatewayEntryPage(items, items.Count == limit ? items[^1].EntryId : null);
    }

    public async Task<GatewayEntryResponse?> GetAsync(Guid? tenantId, Guid id, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        GatewayEntrySummary summary;
        Dictionary<string, string> headers;
        string? body;
        bool truncated;
        await using (var cmd = Sql.Command(conn, $"""
            {Select.Replace("e.seq\n", "e.seq, e.headers, e.body, e.body_truncated\n", StringComparison.Ordinal)}
            WHERE {Scope(tenantId)} AND e.id = $2
            """, (object?)tenantId ?? DBNull.Value, id))
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                return null;
            }
            summary = ReadSummary(reader).Summary;
            headers = GatewayRecorder.ParseHeaders(reader.GetString(15));
            body = reader.IsDBNull(16) ? null : reader.GetString(16);
            truncated = reader.GetBoolean(17);
        }
        var changes = new List<GatewayEventChange>();
        var payloads = new List<string>();
        await using (var cmd = Sql.Command(conn, """
            SELECT v.id, v.event_type, v.email, v.message_id, v.outcome, v.effect, v.payload::text
            FROM webhook_gateway_entries e
            JOIN email_events v ON v.id BETWEEN e.first_event_id AND e.last_event_id AND v.gateway_entry_id = e.id
            WHERE e.id = $1 ORDER BY v.id
            """, id))
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                changes.Add(new GatewayEventChange(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5)));
                payloads.Add(reader.GetString(6));
            }
        }
        // No body of its own: every event of the request was stored with it, so their payloads are the body (as PostgreSQL
        // keeps jsonb: same content, keys and spacing normalised; links' tokens redacted as in the events).
        body ??= summary.Events == 1 && payloads.Count == 1 ? payloads[0] : "[" + string.Join(", ", payloads) + "]";
        return new GatewayEntryResponse(summary, headers, body, truncated, summary.StatusCode == 200 ? summary.Events - changes.Count : 0, changes);
    }

    /// <summary>Entries by id (any scope), with their seq: the live view's changed entries, read on its own connection
    /// (<paramref name="conn"/>).</summary>
    public static async Task<List<(long Seq, GatewayEntrySummary Summary)>> ByIdsAsync(NpgsqlConnection conn, Guid[] ids, CancellationToken ct)
    {
        await using var cmd = Sql.Command(conn, $"{Select} WHERE e.id = ANY($1) ORDER BY e.seq", ids);
        return await ReadAllAsync(cmd, ct);
    }

    /// <summary>Entries inserted after <paramref name="seq"/> (any scope) whose seq lies in one of the ranges
    /// [<paramref name="from"/>[i], <paramref name="to"/>[i]], in seq order: the live view's read of the seqs this
    /// process did not write itself (other processes' entries, and its own not handed over yet). Each range is read on
    /// the seq B-tree before the summary's join on email_events, so the handed-over rows between them cost nothing.
    /// Read on the feed's own connection, which plans each execution.</summary>
    public static async Task<List<(long Seq, GatewayEntrySummary Summary)>> SinceAsync(NpgsqlConnection conn, long seq, long[] from, long[] to, int limit,
        CancellationToken ct)
    {
        // Each range is its own index range scan: "seq > $1" with a filter on the ranges was planned as a sequential scan
        // of the log and a sort (the statistics lag behind a log that grows 5,000 entries a second).
        var inRanges = Select.Replace("FROM webhook_gateway_entries e\n", """
            FROM (SELECT n.* FROM unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)
                  CROSS JOIN LATERAL (SELECT * FROM webhook_gateway_entries m WHERE m.seq BETWEEN r.lo AND r.hi AND m.seq > $1
                                      ORDER BY m.seq LIMIT $4) n
                  ORDER BY n.seq LIMIT $4) e

            """, StringComparison.Ordinal);
        await using var cmd = Sql.Command(conn, $"{inRanges} ORDER BY e.seq", seq, from, to, limit);
        return await ReadAllAsync(cmd, ct);
    }

    private static async Task<List<(long Seq, GatewayEntrySummary Summary)>> ReadAllAsync(NpgsqlCommand cmd, CancellationToken ct)
    {
        var result = new List<(long, GatewayEntrySummary)>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            result.Add(ReadSummary(reader));
        }
        return result;
    }

    /// <summary>The last seq handed out (the identity's sequence: one read whatever the log's size).</summary>
    public async Task<long> MaxSeqAsync(CancellationToken ct) =>
        await Sql.ScalarAsync<long>(db, "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('webhook_gateway_entries', 'seq')), 0)", ct);

    private static (long Seq, GatewayEntrySummary Summary) ReadSummary(NpgsqlDataReader r)
    {
        var status = r.GetInt32(7);
        var events = r.GetInt32(8);
        var result = Result(status, events, r.GetInt64(10), r.GetInt64(11), r.GetInt64(12), r.GetInt64(13));
        return (r.GetInt64(14), new GatewayEntrySummary(r.GetGuid(0).ToString(), r.IsDBNull(1) ? null : r.GetGuid(1).ToString(),
            r.GetFieldValue<DateTimeOffset>(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), status, events, result,
            r.GetFieldValue<string[]>(9)));
    }

    /// <summary>An entry's result, summed over its stored events.</summary>
    private static string Result(int status, int events, long stored, long pending, long held, long applied) =>
        status != 200 ? GatewayResults.Rejected
            : events > 0 && stored == 0 ? GatewayResults.Duplicate
            : held > 0 ? GatewayResults.Held
            : pending > 0 ? GatewayResults.Pending
            : applied > 0 ? GatewayResults.Applied
            : GatewayResults.NoEffect;

    /// <summary>The summary of an entry the writer has just committed with <paramref name="stored"/> new events: what
    /// reading it now would give (no tenant yet, its events not processed yet), received_at to the microsecond as stored.</summary>
    public static GatewayEntrySummary Committed(GatewayEntry e, int stored)
    {
        var at = e.ReceivedAt.ToUniversalTime();
        return new GatewayEntrySummary(e.Id.ToString(), null, new DateTimeOffset(at.Ticks - at.Ticks % 10, TimeSpan.Zero), e.Source, e.Method, e.Path,
            e.Verification, e.StatusCode, e.Events, Result(e.StatusCode, e.Events, stored, stored, 0, 0), e.EventTypes);
    }
}
