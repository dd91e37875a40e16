using Npgsql;

namespace Newsletter.TestSupport.Tests;

public sealed class PostgresServerTests(PostgresServer postgres)
{
    [Fact]
    public async Task CreateDatabaseAsync_gives_separate_empty_databases()
    {
        var ct = TestContext.Current.CancellationToken;
        var first = await postgres.CreateDatabaseAsync("TestSupport first", ct);
        var second = await postgres.CreateDatabaseAsync("TestSupport first", ct);

        Assert.NotEqual(first, second);
        Assert.Equal("testsupport_first", new NpgsqlConnectionStringBuilder(first).Database![..17]);

        // A table made in one database is invisible in the other.
        await using (var conn = new NpgsqlConnection(first))
        {
            await conn.OpenAsync(ct);
            await using var create = new NpgsqlCommand("CREATE TABLE marker (id int); INSERT INTO marker VALUES (42);", conn);
            await create.ExecuteNonQueryAsync(ct);
            await using var read = new NpgsqlCommand("SELECT id FROM marker", conn);
            Assert.Equal(42, await read.ExecuteScalarAsync(ct));
        }

        await using (var conn = new NpgsqlConnection(second))
        {
            await conn.OpenAsync(ct);
            await using var count = new NpgsqlCommand(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'marker'", conn);
            Assert.Equal(0L, await count.ExecuteScalarAsync(ct));
            await using var version = new NpgsqlCommand("SHOW server_version_num", conn);
            Assert.True(int.Parse((string)(await version.ExecuteScalarAsync(ct))!, System.Globalization.CultureInfo.InvariantCulture) >= 150000);
        }
    }

    [Fact]
    public async Task Server_accepts_many_concurrent_connections()
    {
        var ct = TestContext.Current.CancellationToken;
        var cs = new NpgsqlConnectionStringBuilder(await postgres.CreateDatabaseAsync("concurrency", ct))
        {
            Pooling = false,
        }.ConnectionString;

        // Integration tests run services side by side; the default max_connections (100) is too tight.
        var connections = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < 120; i++)
            {
                var conn = new NpgsqlConnection(cs);
                connections.Add(conn);
                await conn.OpenAsync(ct);
            }

            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()", connections[^1]);
            Assert.True((long)(await cmd.ExecuteScalarAsync(ct))! >= 120);
        }
        finally
        {
            foreach (var conn in connections)
            {
                await conn.DisposeAsync();
            }
        }
    }
}
