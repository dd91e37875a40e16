using System.Net.Sockets;
using Npgsql;

namespace Newsletter.TestSupport.Tests;

/// <summary>The private, durable server fault tests crash and stop: its settings, a crash, an outage.</summary>
public sealed class DurablePostgresServerTests
{
    [Fact]
    public async Task A_crash_restart_keeps_every_committed_row_and_the_port()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = await PostgresServer.StartDurableAsync(ct);
        var db = await server.CreateDatabaseAsync("durable", ct);
        var port = server.Port;
        Assert.Equal(("on", "on", "on"), (await ShowAsync(db, "fsync"), await ShowAsync(db, "synchronous_commit"), await ShowAsync(db, "full_page_writes")));

        await ExecuteAsync(db, "CREATE TABLE marks (id int PRIMARY KEY)");
        // Committed one by one, the last right before the crash: each COMMIT returned only once its WAL was flushed.
        for (var i = 1; i <= 50; i++)
        {
            await ExecuteAsync(db, $"INSERT INTO marks VALUES ({i})");
        }
        // Each of those sessions flushed its statistics when it ended.
        var commitsBefore = await ScalarAsync<long>(db, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
        Assert.True(commitsBefore >= 50, $"xact_commit {commitsBefore}");

        await server.RestartImmediateAsync(ct);

        Assert.True(server.IsRunning);
        Assert.Equal(port, server.Port);
        Assert.Equal(50L, await ScalarAsync<long>(db, "SELECT count(*) FROM marks"));
        // A crash, not a clean shutdown: crash recovery discards the cumulative statistics (a clean stop keeps them).
        var commitsAfter = await ScalarAsync<long>(db, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
        Assert.True(commitsAfter < commitsBefore, $"xact_commit {commitsBefore} before the crash, {commitsAfter} after: the statistics survived, so it was no crash");
    }

    [Fact]
    public async Task While_stopped_connections_are_refused_and_after_start_the_data_is_there()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = await PostgresServer.StartDurableAsync(ct);
        var db = await server.CreateDatabaseAsync("outage", ct);
        await ExecuteAsync(db, "CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");

        await server.StopAsync(immediate: true, ct);

        Assert.False(server.IsRunning);
        Assert.False(await FreePort.IsAcceptingAsync(server.Port, ct));
        var refused = await Assert.ThrowsAsync<NpgsqlException>(() => ScalarAsync<string>(db, "SELECT v FROM t"));
        var socket = Assert.IsType<SocketException>(refused.InnerException);
        Assert.Equal(SocketError.ConnectionRefused, socket.SocketErrorCode);

        await server.StartAsync(ct);

        Assert.True(server.IsRunning);
        Assert.Equal("before", await ScalarAsync<string>(db, "SELECT v FROM t"));
    }

    [Fact]
    public async Task The_shared_server_cannot_be_stopped()
    {
        var ct = TestContext.Current.CancellationToken;
        var shared = new PostgresServer(); // not started: the check comes first
        await Assert.ThrowsAsync<InvalidOperationException>(() => shared.StopAsync(immediate: false, ct));
        await Assert.ThrowsAsync<InvalidOperationException>(() => shared.RestartImmediateAsync(ct));
    }

    private static NpgsqlConnection Open(string cs) =>
        new(new NpgsqlConnectionStringBuilder(cs) { Pooling = false }.ConnectionString);

    private static async Task ExecuteAsync(string cs, string sql)
    {
        await using var conn = Open(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(string cs, string sql)
    {
        await using var conn = Open(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<string> ShowAsync(string cs, string setting) => await ScalarAsync<string>(cs, "SHOW " + setting);
}
