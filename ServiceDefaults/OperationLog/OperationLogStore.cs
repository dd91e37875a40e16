using System.Globalization;
using System.Text;
using System.Text.Json;
using Newsletter.Contracts;
using Npgsql;
using NpgsqlTypes;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>What a read of the operation log asks for; <c>TenantId</c> null with <c>AllTenants</c> = every tenant (admin).</summary>
public sealed record OperationLogFilter(
    Guid? TenantId, bool AllTenants, string? Actor, string? Action, DateTimeOffset? From, DateTimeOffset? To, string? Target);

/// <summary>Reads the service's operation log: keyset pages newest first, or every matching row for an export.</summary>
public sealed class OperationLogStore(NpgsqlDataSource db)
{
    private const string Columns = "id, occurred_at, tenant_id, actor_kind, actor_id, actor_display, action, target, method, path, "
        + "status_code, outcome, client_ip, user_agent, before, after, note";

    public async Task<OperationLogPage> PageAsync(OperationLogFilter filter, long? after, int limit, CancellationToken ct)
    {
        await using var cmd = Command(filter, after, limit);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var items = new List<OperationLogEntryResponse>(limit);
        while (await reader.ReadAsync(ct))
        {
            items.Add(Read(reader));
        }
        return new OperationLogPage(items, items.Count == limit ? items[^1].Id.ToString(CultureInfo.InvariantCulture) : null);
    }

    /// <summary>Every matching row, newest first, read as the caller consumes them (one query, no paging).</summary>
    public async IAsyncEnumerable<OperationLogEntryResponse> StreamAsync(OperationLogFilter filter,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var cmd = Command(filter, after: null, limit: null);
        await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            yield return Read(reader);
        }
    }

    private NpgsqlCommand Command(OperationLogFilter f, long? after, int? limit)
    {
        var where = new List<string>();
        var cmd = db.CreateCommand();
        string Param(object value, NpgsqlDbType type)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
            return "$" + cmd.Parameters.Count.ToString(CultureInfo.InvariantCulture);
        }
        if (f.TenantId is { } tenant)
        {
            where.Add($"tenant_id = {Param(tenant, NpgsqlDbType.Uuid)}");
        }
        else if (!f.AllTenants)
        {
            throw new ArgumentException("A read of the operation log names its tenant unless it is across tenants.", nameof(f));
        }
        if (f.Actor is { Length: > 0 } actor)
        {
            var p = Param(actor, NpgsqlDbType.Text);
            where.Add($"(actor_id = {p} OR actor_display = {p})");
        }
        if (f.Action is { Length: > 0 } action)
        {
            where.Add($"action = {Param(action, NpgsqlDbType.Text)}");
        }
        if (f.From is { } from)
        {
            where.Add($"occurred_at >= {Param(from, NpgsqlDbType.TimestampTz)}");
        }
        if (f.To is { } to)
        {
            where.Add($"occurred_at < {Param(to, NpgsqlDbType.TimestampTz)}");
        }
        if (f.Target is { Length: > 0 } target)
        {
            // Any route value: the id of a job, list, client or endpoint, whatever the route called it.
            where.Add($"EXISTS (SELECT 1 FROM jsonb_each_text(target) t WHERE t.value = {Param(target, NpgsqlDbType.Text)})");
        }
        if (after is { } cursor)
        {
            where.Add($"id < {Param(cursor, NpgsqlDbType.Bigint)}");
        }
        var sql = new StringBuilder($"SELECT {Columns} FROM {OperationLogSchema.Table}");
        if (where.Count > 0)
        {
            sql.Append(" WHERE ").AppendJoin(" AND ", where);
        }
        sql.Append(" ORDER BY id DESC");
        if (limit is { } n)
        {
            sql.Append(" LIMIT ").Append(Param(n, NpgsqlDbType.Integer));
        }
        cmd.CommandText = sql.ToString();
        return cmd;
    }

    private static OperationLogEntryResponse Read(NpgsqlDataReader r)
    {
        string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        JsonElement? Json(int i) => r.IsDBNull(i) ? null : JsonDocument.Parse(r.GetString(i)).RootElement.Clone();
        var id = r.GetInt64(0);
        var occurredAt = r.GetFieldValue<DateTimeOffset>(1);
        var tenant = r.IsDBNull(2) ? null : r.GetGuid(2).ToString();
        var kind = r.GetString(3);
        var actorId = Text(4);
        var display = Text(5);
        var action = r.GetString(6);
        var target = Text(7) is { } t ? JsonSerializer.Deserialize<Dictionary<string, string?>>(t) : null;
        return new OperationLogEntryResponse(id, occurredAt, tenant, kind, actorId, display, action, target,
            r.GetString(8), r.GetString(9), r.GetInt32(10), r.GetString(11), Text(12), Text(13), Json(14), Json(15), Text(16));
    }
}
