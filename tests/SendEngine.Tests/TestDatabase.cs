using Npgsql;

namespace SendEngine.Tests;

/// <summary>Reads a service's database directly, for assertions on what it stored.</summary>
internal static class TestDatabase
{
    /// <summary>Every row of <paramref name="sql"/> ($1, $2… bound to <paramref name="args"/>), as raw values.</summary>
    public static async Task<List<object[]>> QueryAsync(string db, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<object[]>();
        while (await reader.ReadAsync())
        {
            var row = new object[reader.FieldCount];
            reader.GetValues(row);
            rows.Add(row);
        }
        return rows;
    }
}
