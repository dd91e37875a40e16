using Npgsql;

namespace Newsletter.ServiceDefaults.Data;

public sealed class DatabaseOptions
{
    public const string Section = "Database";

    /// <summary>Apply EF Core migrations on start (run.sh and tests do; production may run them as a deploy step).</summary>
    public bool ApplyMigrationsOnStartup { get; set; }
}

public static class PostgresDefaults
{
    /// <summary>
    /// Connection defaults measured in bench/membercenter (they halve PostgreSQL's CPU per request), unless the
    /// connection string sets them: no DISCARD ALL when a pooled connection is reused (the services keep no session
    /// state; their advisory locks are transaction-scoped), automatic preparation of the hot statements, and no JIT
    /// compilation (<c>-c jit=off</c> in Options unless Options set jit): these are short statements whose cost estimate
    /// can still pass jit_above_cost (a LATERAL aggregate over a misestimated row count), and each execution then spent
    /// 30-55 ms compiling for a read of under 1 ms (the webhook gateway's live view, auto_explain, 2026-12-02).
    /// </summary>
    public static string Tuned(string connectionString)
    {
        // NpgsqlConnectionStringBuilder.ContainsKey answers whether a keyword is known, not whether it was set, so
        // what the operator wrote is read with the plain builder (case-insensitive keys).
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        if (!given.ContainsKey("No Reset On Close") && !given.ContainsKey("NoResetOnClose"))
        {
            csb.NoResetOnClose = true;
        }
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            csb.MaxAutoPrepare = 64;
        }
        if (csb.Options?.Contains("jit", StringComparison.OrdinalIgnoreCase) != true)
        {
            AddServerOption(csb, "jit=off");
        }
        return csb.ConnectionString;
    }

    /// <summary>The connection string with <c>-c <paramref name="setting"/></c> added to the server options it already has.</summary>
    public static string WithServerOption(string connectionString, string setting)
    {
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        AddServerOption(csb, setting);
        return csb.ConnectionString;
    }

    private static void AddServerOption(NpgsqlConnectionStringBuilder csb, string setting) =>
        csb.Options = string.IsNullOrWhiteSpace(csb.Options) ? $"-c {setting}" : $"{csb.Options} -c {setting}";
}
