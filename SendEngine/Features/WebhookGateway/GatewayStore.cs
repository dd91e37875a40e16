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

    /// <summary>Entries by id (any scope) up to seq <paramref name="upTo"/>: the live view's changed entries (later ones
    /// are streamed with their current state when its cursor reaches them).</summary>
    public async Task<List<GatewayEntrySummary>> ByIdsAsync(Guid[] ids, long upTo, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, $"{Select} WHERE e.id = ANY($1) AND e.seq <= $2 ORDER BY e.id", ids, upTo);
        var result = new List<GatewayEntrySummary>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            result.Add(ReadSummary(reader).Summary);
        }
        return result;
    }

    /// <summary>Entries inserted after <paramref name="seq"/> (any scope), in seq order: the live view's shared poll.</summary>
    public async Task<List<(long Seq, GatewayEntrySummary Summary)>> SinceAsync(long seq, int limit, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, $"{Select} WHERE e.seq > $1 ORDER BY e.seq LIMIT $2", seq, limit);
        var result = new List<(long, GatewayEntrySummary)>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            result.Add(ReadSummary(reader));
        }
        return result;
    }

    /// <summary>The last seq handed out (the identity's sequence: max(seq) would scan, the index being BRIN).</summary>
    public async Task<long> MaxSeqAsync(CancellationToken ct) =>
        await Sql.ScalarAsync<long>(db, "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('webhook_gateway_entries', 'seq')), 0)", ct);

    private static (long Seq, GatewayEntrySummary Summary) ReadSummary(NpgsqlDataReader r)
    {
        var status = r.GetInt32(7);
        var events = r.GetInt32(8);
        long stored = r.GetInt64(10), pending = r.GetInt64(11), held = r.GetInt64(12), applied = r.GetInt64(13);
        var result = status != 200 ? GatewayResults.Rejected
            : events > 0 && stored == 0 ? GatewayResults.Duplicate
            : held > 0 ? GatewayResults.Held
            : pending > 0 ? GatewayResults.Pending
            : applied > 0 ? GatewayResults.Applied
            : GatewayResults.NoEffect;
        return (r.GetInt64(14), new GatewayEntrySummary(r.GetGuid(0).ToString(), r.IsDBNull(1) ? null : r.GetGuid(1).ToString(),
            r.GetFieldValue<DateTimeOffset>(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), status, events, result,
            r.GetFieldValue<string[]>(9)));
    }
}
