using Npgsql;

namespace SendEngine.Data;

/// <summary>Positional-parameter commands ($1, $2 ...) for the hot paths that bypass EF Core.</summary>
internal static class Sql
{
    public static NpgsqlCommand Command(NpgsqlConnection conn, string sql, params object[] args)
    {
        var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        return cmd;
    }

    /// <summary>One statement of an <see cref="NpgsqlBatch"/>, with its own $1, $2 ... parameters.</summary>
    public static NpgsqlBatchCommand BatchCommand(string sql, params object[] args)
    {
        var cmd = new NpgsqlBatchCommand(sql);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        return cmd;
    }

    public static async Task<int> ExecuteAsync(NpgsqlConnection conn, string sql, CancellationToken ct, params object[] args)
    {
        await using var cmd = Command(conn, sql, args);
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    public static async Task<int> ExecuteAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params object[] args)
    {
        await using var cmd = Command(conn, sql, args);
        cmd.Transaction = tx;
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    public static async Task<int> ExecuteAsync(NpgsqlDataSource db, string sql, CancellationToken ct, params object[] args)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await ExecuteAsync(conn, sql, ct, args);
    }

    public static async Task<T?> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct, params object[] args)
    {
        await using var cmd = Command(conn, sql, args);
        var value = await cmd.ExecuteScalarAsync(ct);
        return value is null or DBNull ? default : (T)value;
    }

    public static async Task<T?> ScalarAsync<T>(NpgsqlDataSource db, string sql, CancellationToken ct, params object[] args)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        return await ScalarAsync<T>(conn, sql, ct, args);
    }
}
