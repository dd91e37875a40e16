using Npgsql;
using NpgsqlTypes;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>Appends rows to the service's <c>operation_log</c>: one INSERT each, on the service's data source.</summary>
public sealed class OperationLogWriter(NpgsqlDataSource db)
{
    public async Task WriteAsync(OperationLogEntry e, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            INSERT INTO {OperationLogSchema.Table} (occurred_at, tenant_id, actor_kind, actor_id, actor_display, action, target,
                method, path, status_code, outcome, client_ip, user_agent, before, after, note)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.OccurredAt });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)e.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.ActorKind });
        cmd.Parameters.Add(Text(e.ActorId));
        cmd.Parameters.Add(Text(e.ActorDisplay));
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.Action });
        cmd.Parameters.Add(Json(e.Target));
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.Method });
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.Path });
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.StatusCode });
        cmd.Parameters.Add(new NpgsqlParameter { Value = e.Outcome });
        cmd.Parameters.Add(Text(e.ClientIp));
        cmd.Parameters.Add(Text(e.UserAgent));
        cmd.Parameters.Add(Json(e.Before));
        cmd.Parameters.Add(Json(e.After));
        cmd.Parameters.Add(Text(e.Note));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter Json(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Jsonb };
}
