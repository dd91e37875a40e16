using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Privacy;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Features.Suppressions;

/// <summary>
/// The one writer of the tenants' suppression lists for delivery and ESP feedback (the tenant API adds its own rows
/// through EF): an address suppressed here is also queued to be reported to Member Center, in the same transaction,
/// so Member Center's subscription state follows (MemberCenterReporter sends the queue).
/// </summary>
public static class SuppressionStore
{
    public const string SourceEsp = "esp";
    public const string SourceDelivery = "delivery";
    /// <summary>The hashed suppression an erasure leaves (reason <see cref="ReasonErased"/>).</summary>
    public const string SourceErasure = "erasure";
    public const string ReasonErased = "erased";

    /// <summary>A recorded SMTP reply that rejects the mailbox itself (RFC 3463 X.1.0–X.1.3, X.1.10, X.2.1), as PostgreSQL regex.</summary>
    public const string MailboxRejectedPattern = @"^5[0-9][0-9] 5\.(1\.(0|1|2|3|10)|2\.1)([^0-9]|$)";

    /// <summary>
    /// The reasons of those of <paramref name="emails"/> (normalised) the tenant suppresses, by address or by the keyed
    /// hash an erasure left (<see cref="AddressHasher.ErasedMarker"/>; an erased snapshot row carries the marker itself).
    /// </summary>
    public static async Task<Dictionary<string, string>> FindAsync(NpgsqlConnection conn, AddressHasher hasher, Guid tenantId, string[] emails, CancellationToken ct)
    {
        var (command, keyOf) = FindCommand(hasher, tenantId, emails);
        await using var batch = new NpgsqlBatch(conn) { BatchCommands = { command } };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        return await ReadFoundAsync(reader, keyOf, ct);
    }

    /// <summary>
    /// <see cref="FindAsync"/>'s look-up as one command of a caller's batch (to share its round trip), with the map its
    /// rows are read back through (<see cref="ReadFoundAsync"/>).
    /// </summary>
    public static (NpgsqlBatchCommand Command, Dictionary<string, string> KeyOf) FindCommand(AddressHasher hasher, Guid tenantId, string[] emails)
    {
        var keyOf = new Dictionary<string, string>(emails.Length * 2, StringComparer.Ordinal);
        foreach (var e in emails)
        {
            keyOf[e] = e;
            if (!e.StartsWith(AddressHasher.ErasedPrefix, StringComparison.Ordinal))
            {
                keyOf[hasher.ErasedMarker(e)] = e;
            }
        }
        return (Sql.BatchCommand("SELECT email, reason FROM suppressions WHERE tenant_id = $1 AND email = ANY($2)", tenantId, keyOf.Keys.ToArray()), keyOf);
    }

    /// <summary>The reasons found by <see cref="FindCommand"/>'s command, the reader on its result.</summary>
    public static async Task<Dictionary<string, string>> ReadFoundAsync(NpgsqlDataReader reader, Dictionary<string, string> keyOf, CancellationToken ct)
    {
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
        {
            found[keyOf[reader.GetString(0)]] = reader.GetString(1);
        }
        return found;
    }

    /// <summary>Suppresses <paramref name="email"/> (normalised) unless it already is; an ESP event's suppression.</summary>
    public static Task AddAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, string email, string reason, DateTimeOffset now, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, """
            INSERT INTO suppressions (tenant_id, email, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, email) DO NOTHING
            """, ct, tenantId, email, reason, SourceEsp, now);

    /// <summary>
    /// A receiving server that refused a mailbox outright (550 5.1.1 user unknown, 5.1.x bad address, 5.2.1 mailbox
    /// disabled) has given a hard bounce without any ESP event: the job's failed rows with such a reply join the tenant's
    /// suppressions (source delivery) and are queued as hard-bounce reports to Member Center. Read back from the
    /// recorded results, so it is idempotent. Reads the job's rows with ids in [<paramref name="from"/>,
    /// <paramref name="upTo"/>): a run checks each row once it is final instead of the whole job every time. Returns how
    /// many addresses were added.
    /// </summary>
    public static Task<int> AddRefusedMailboxesAsync(NpgsqlDataSource db, Guid jobId, DateTimeOffset now, long from, long upTo,
        CancellationToken ct) =>
        Sql.ExecuteAsync(db, $"""
            WITH bounced AS (
                SELECT DISTINCT j.tenant_id, lower(btrim(r.email)) AS email
                FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
                WHERE r.job_id = $1 AND r.id >= $4 AND r.id < $5 AND r.status = '{RecipientStatuses.Failed}' AND r.detail ~ $2),
            added AS (
                INSERT INTO suppressions (tenant_id, email, reason, source, created_at)
                SELECT tenant_id, email, '{SuppressionReasons.HardBounce}', '{SourceDelivery}', $3 FROM bounced
                ON CONFLICT (tenant_id, email) DO NOTHING
                RETURNING tenant_id, email)
            INSERT INTO member_center_reports (tenant_id, email, reason, list_id, occurred_at, created_at, attempts, next_attempt_at)
            SELECT tenant_id, email, '{SuppressionReasons.HardBounce}', NULL, $3, $3, 0, $3 FROM added
            """, ct, jobId, MailboxRejectedPattern, now, from, upTo);
}
