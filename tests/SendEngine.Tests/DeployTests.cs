using System.Diagnostics;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>deploy/: what docker-compose.yml runs, exercised without Docker where it can be.</summary>
public sealed class DeployTests
{
    [Fact]
    public async Task The_PostgreSQL_init_script_gives_each_service_a_role_that_owns_its_database_and_cannot_open_the_other()
    {
        await using var server = await PostgresServer.StartDurableAsync(TestContext.Current.CancellationToken);
        var admin = new NpgsqlConnectionStringBuilder(server.AdminConnectionString);
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(RepoPaths.Root, "deploy", "postgres-init.sh"));
        psi.Environment["POSTGRES_USER"] = admin.Username;
        psi.Environment["PGHOST"] = admin.Host;
        psi.Environment["PGPORT"] = admin.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["PGPASSWORD"] = admin.Password ?? "";
        // A quote in a password must not break out of the SQL (psql quotes :'variables').
        psi.Environment["MEMBERCENTER_DB_PASSWORD"] = "mc-pass-'; DROP ROLE x; --";
        psi.Environment["SENDENGINE_DB_PASSWORD"] = "se-pass-0123456789";
        psi.Environment["CONSOLE_DB_PASSWORD"] = "console-pass-0123456789";
        using var init = Process.Start(psi)!;
        var output = await init.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken)
            + await init.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await init.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.True(init.ExitCode == 0, output);

        string As(string role, string password, string database) => new NpgsqlConnectionStringBuilder(server.AdminConnectionString)
        {
            Username = role, Password = password, Database = database, Pooling = false,
        }.ConnectionString;
        var mc = ("membercenter", "mc-pass-'; DROP ROLE x; --");
        var se = ("sendengine", "se-pass-0123456789");

        // Each role builds its own schema (Hangfire makes a schema of its own in Send Engine's database).
        await ExecuteAsync(As(mc.Item1, mc.Item2, "membercenter"), "CREATE TABLE subscribers (id int); INSERT INTO subscribers VALUES (1)");
        await ExecuteAsync(As(se.Item1, se.Item2, "sendengine"), "CREATE SCHEMA hangfire; CREATE TABLE hangfire.job (id int); CREATE TABLE send_jobs (id int)");
        Assert.Equal("membercenter", await ScalarAsync(As(mc.Item1, mc.Item2, "membercenter"), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"));
        // Neither opens the other's database, and neither is a superuser.
        var denied = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(As(se.Item1, se.Item2, "membercenter"), "SELECT 1"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        denied = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(As(mc.Item1, mc.Item2, "sendengine"), "SELECT 1"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Equal("false", await ScalarAsync(As(se.Item1, se.Item2, "sendengine"), "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"));
        // The console's database (sessions, key ring) is its own too.
        var console = ("console", "console-pass-0123456789");
        await ExecuteAsync(As(console.Item1, console.Item2, "console"), "CREATE TABLE session_tickets (id int)");
        denied = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(As(console.Item1, console.Item2, "membercenter"), "SELECT 1"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var batch = new NpgsqlCommand(sql, conn);
        await batch.ExecuteNonQueryAsync();
    }

    private static async Task<string?> ScalarAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (string?)await cmd.ExecuteScalarAsync();
    }
}
