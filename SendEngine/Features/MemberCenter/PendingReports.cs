using Npgsql;
using SendEngine.Data;

namespace SendEngine.Features.MemberCenter;

/// <summary>
/// Send Engine's own skip list while Member Center has not acknowledged a report: an unsubscribe keeps its address off
/// that list's jobs, a complaint or hard bounce off all the tenant's jobs, until the report is sent (from then on Member
/// Center's recipients and change feed leave the address out). A report Member Center refused keeps skipping for good:
/// the reader asked, and nothing else records it.
/// </summary>
public static class PendingReports
{
    /// <summary>The partial index's predicate: reports Member Center has not acknowledged.</summary>
    public const string Unacknowledged = "completed_at IS NULL OR outcome = 'failed'";

    /// <summary>The report reasons of those of <paramref name="emails"/> (normalised) the job of <paramref name="listId"/> must skip.</summary>
    public static async Task<Dictionary<string, string>> FindAsync(NpgsqlConnection conn, Guid tenantId, Guid listId, string[] emails, CancellationToken ct)
    {
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var cmd = Sql.Command(conn, $"""
            SELECT email, reason FROM member_center_reports
            WHERE tenant_id = $1 AND email = ANY($2) AND (list_id IS NULL OR list_id = $3) AND ({Unacknowledged})
            """, tenantId, emails, listId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            found.TryAdd(reader.GetString(0), reader.GetString(1));
        }
        return found;
    }
}
