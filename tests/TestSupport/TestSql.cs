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

    /// <summary>
    /// The public schema as sorted text lines (each column's type, nullability and default; each index's and
    /// constraint's definition; the functions; the applied migrations), to compare a database built one way with one built another.
    /// </summary>
    public static Task<string> SchemaAsync(string connectionString) => ScalarAsync<string>(connectionString, """
        SELECT string_agg(line, E'\n' ORDER BY line) FROM (
          SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line
          FROM information_schema.columns WHERE table_schema = 'public'
          UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
          UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
          UNION ALL SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
          UNION ALL SELECT 'migration ' || migration_id FROM "__EFMigrationsHistory") s
        """);

    /// <summary>Runs a script of several statements (a migration script) as one command, as psql -f would.</summary>
    public static async Task ExecuteScriptAsync(string connectionString, string script)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(script, conn);
        await cmd.ExecuteNonQueryAsync();
    }
}
