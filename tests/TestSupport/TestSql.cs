using Npgsql;

namespace Newsletter.TestSupport;

/// <summary>One-off reads of a test database, for assertions on what the services stored.</summary>
public static class TestSql
{
    /// <summary>The first column of the first row (default when there is none or it is NULL); positional parameters $1, $2…</summary>
    public static async Task<T> ScalarAsync<T>(string connectionString, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        var value = await cmd.ExecuteScalarAsync();
        return value is null or DBNull ? default! : (T)value;
    }
}
