using System.Net;
using Newsletter.TestSupport;
using Npgsql;

namespace MemberCenter.Tests;

/// <summary>/health/ready follows PostgreSQL; /health/live does not (a load balancer stops sending, nothing restarts).</summary>
public sealed class ReadinessTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);

    public ValueTask InitializeAsync() => _mc.InitializeAsync();

    public ValueTask DisposeAsync() => ((IAsyncDisposable)_mc).DisposeAsync();

    [Fact]
    public async Task Not_ready_while_its_database_refuses_connections_and_ready_again_after()
    {
        using var http = _mc.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode);
        var database = new NpgsqlConnectionStringBuilder(_mc.ConnectionString).Database!;

        // The database stops taking connections and the ones Member Center holds are closed, as in an outage.
        await AdminAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
        try
        {
            await AdminAsync($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'");
            NpgsqlConnection.ClearAllPools();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("health/ready")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live")).StatusCode);
        }
        finally
        {
            await AdminAsync($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true");
        }
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode);
    }

    [Fact]
    public async Task Not_ready_while_its_PostgreSQL_is_stopped_and_ready_again_after_it_starts()
    {
        // The server itself down (connections refused), not one database refusing sessions as above.
        var ct = TestContext.Current.CancellationToken;
        await using var own = await PostgresServer.StartDurableAsync(ct);
        await using var mc = new MemberCenterFixture(own, mail);
        await mc.InitializeAsync();
        using var http = mc.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready", ct)).StatusCode);

        await own.StopAsync(immediate: true, ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("health/ready", ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live", ct)).StatusCode);

        await own.StartAsync(ct);
        // Pooled connections broken by the crash are discarded as they fail; ready again without a restart.
        var until = DateTime.UtcNow.AddSeconds(60);
        HttpStatusCode status;
        while ((status = (await http.GetAsync("health/ready", ct)).StatusCode) != HttpStatusCode.OK && DateTime.UtcNow < until)
        {
            await Task.Delay(200, ct);
        }
        Assert.Equal(HttpStatusCode.OK, status);
    }

    private async Task AdminAsync(string sql)
    {
        var admin = new NpgsqlConnectionStringBuilder(_mc.ConnectionString) { Database = "postgres", Pooling = false };
        await using var conn = new NpgsqlConnection(admin.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }
}
