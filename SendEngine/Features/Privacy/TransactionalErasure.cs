using System.Text.Json.Nodes;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Features.Privacy;

/// <summary>
/// Erasure's part in transactional mail: the address's tasks keep status, times and message id, but the address becomes
/// its keyed-hash marker and its name, server reply and metadata go. The requests that named it keep the message as the
/// tenant sent it, minus this address: wherever it appears (to[], bcc_address, the stored answer) it becomes the marker,
/// its to[] name is removed, and its merge_vars and recipient_metadata entries are dropped. A pending task is then
/// refused by the dispatcher's suppression check (the marker is suppressed).
/// </summary>
internal static class TransactionalErasure
{
    public static async Task<int> EraseAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, string email, string marker, CancellationToken ct)
    {
        var requests = new List<(Guid Id, string Message, string Response)>();
        await using (var cmd = Sql.Command(conn, """
            SELECT id, message::text, response::text FROM transactional_requests
            WHERE tenant_id = $1 AND id IN (SELECT request_id FROM transactional_tasks
                                            WHERE tenant_id = $1 AND (email_key = $2 OR lower(btrim(email)) = $2))
            ORDER BY id FOR UPDATE
            """, tenantId, email))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                requests.Add((reader.GetGuid(0), reader.GetString(1), reader.GetString(2)));
            }
        }
        foreach (var (id, message, response) in requests)
        {
            await Sql.ExecuteAsync(conn, tx, "UPDATE transactional_requests SET message = $2, response = $3::jsonb WHERE id = $1", ct,
                id, Scrub(message, email, marker), Scrub(response, email, marker));
        }
        return await Sql.ExecuteAsync(conn, tx, """
            UPDATE transactional_tasks SET email = $3, email_key = $3, name = NULL, detail = NULL, metadata = '{}'::jsonb
            WHERE tenant_id = $1 AND (email_key = $2 OR lower(btrim(email)) = $2)
            """, ct, tenantId, email, marker);
    }

    /// <summary>The JSON document with <paramref name="email"/> replaced as described on the class.</summary>
    internal static string Scrub(string json, string email, string marker)
    {
        var root = JsonNode.Parse(json);
        return root is null ? json : (Scrub(root, email, marker) ?? root).ToJsonString();
    }

    private static bool Names(JsonNode? node, string email) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) && string.Equals(s.Trim(), email, StringComparison.OrdinalIgnoreCase);

    /// <summary>Scrubs in place; returns a replacement for a string value that is the address, else null.</summary>
    private static JsonNode? Scrub(JsonNode node, string email, string marker)
    {
        switch (node)
        {
            case JsonArray array:
                for (var i = array.Count - 1; i >= 0; i--)
                {
                    if (array[i] is JsonObject o && Names(o["rcpt"], email))
                    {
                        array.RemoveAt(i); // a merge_vars or recipient_metadata entry of this reader
                    }
                    else if (array[i] is { } item && Scrub(item, email, marker) is { } replacement)
                    {
                        array[i] = replacement;
                    }
                }
                return null;
            case JsonObject obj:
                if (Names(obj["email"], email))
                {
                    obj.Remove("name");
                }
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (obj[key] is { } child && Scrub(child, email, marker) is { } replacement)
                    {
                        obj[key] = replacement;
                    }
                }
                return null;
            default:
                return Names(node, email) ? JsonValue.Create(marker) : null;
        }
    }
}
