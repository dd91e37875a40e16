using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using SendEngine.Data;
using SendEngine.Extensions;
using SendEngine.Features.Transactional;

namespace SendEngine.Tests;

/// <summary>
/// The transactional dispatcher's claim and records and the bulk delivery ledger run on a pool of their own
/// (DataExtensions.GenericPlans, docs/send-engine.md "Transactional mail"), whose connections plan each statement once
/// and read through an index wherever one serves. A generic plan cached while transactional_tasks was small scanned the
/// whole table at every record; planning each execution instead cost as much as executing (the claim: a third of its time).
/// </summary>
public sealed class TransactionalDispatchPlanTests(StackFixture stack)
{
    [Fact]
    public async Task The_dispatch_data_source_keeps_generic_plans_without_scans_and_the_shared_one_keeps_the_defaults()
    {
        var ct = TestContext.Current.CancellationToken;
        var dispatch = stack.SendEngine.Services.GetRequiredKeyedService<NpgsqlDataSource>(DataExtensions.GenericPlans);
        var shared = stack.SendEngine.Services.GetRequiredService<NpgsqlDataSource>();
        Assert.NotSame(dispatch, shared);
        Assert.Equal("force_generic_plan", await ShowAsync(dispatch, "plan_cache_mode", ct));
        Assert.Equal("off", await ShowAsync(dispatch, "enable_seqscan", ct));
        Assert.Equal("off", await ShowAsync(dispatch, "enable_bitmapscan", ct));
        // The settings are the pool's, not a SET that a pooled connection would carry to the shared pool's users.
        Assert.Equal("auto", await ShowAsync(shared, "plan_cache_mode", ct));
        Assert.Equal("on", await ShowAsync(shared, "enable_seqscan", ct));
        Assert.Equal("on", await ShowAsync(shared, "enable_bitmapscan", ct));
        // Neither compiles statements with JIT (PostgresDefaults.Tuned): 30-55 ms per execution of a short read.
        Assert.Equal("off", await ShowAsync(dispatch, "jit", ct));
        Assert.Equal("off", await ShowAsync(shared, "jit", ct));
    }

    [Fact]
    public async Task The_claim_prepared_on_a_queue_with_a_backlog_takes_the_first_due_rows_in_the_due_index_order()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var conn = await OpenUnpooledAsync(ct);
        // The claim's own tables, shadowed by temporary copies (pg_temp comes first in the search path) holding a backlog
        // after an outage: 5,000 due tasks, 16 leased, 1,000 scheduled later. Its generic plan must read the due index
        // in order and stop after the group, not read every due row and sort them.
        await Sql.ExecuteAsync(conn, """
            CREATE TEMP TABLE transactional_deliveries (LIKE public.transactional_deliveries INCLUDING ALL);
            CREATE TEMP TABLE transactional_tasks (LIKE public.transactional_tasks INCLUDING ALL);
            CREATE TEMP TABLE transactional_requests (LIKE public.transactional_requests INCLUDING ALL);
            INSERT INTO transactional_deliveries (task_id, due_at, lease_until, attempts)
            SELECT gen_random_uuid(), now() + (g - 5000) * interval '1 second', CASE WHEN g <= 16 THEN now() + interval '1 minute' END, 0
            FROM generate_series(1, 6000) g;
            ANALYZE transactional_deliveries; ANALYZE transactional_tasks; ANALYZE transactional_requests;
            """, ct);
        await Sql.ExecuteAsync(conn, $"PREPARE claim_probe(timestamptz, int, timestamptz) AS {TransactionalTaskStore.ClaimSql}", ct);
        var plan = await ExplainAsync(conn, "EXECUTE claim_probe(now(), 16, now() + interval '1 minute')", ct);
        Assert.Matches(@"Index Scan using \S*due_at\S* on transactional_deliveries", plan);
        Assert.DoesNotContain("Bitmap", plan);
        Assert.DoesNotContain("Seq Scan", plan);
    }

    [Fact]
    public async Task A_look_up_by_ids_prepared_on_a_small_table_reads_the_index()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var conn = await OpenUnpooledAsync(ct);
        // A record's look-up (rows by an array of ids), prepared on a table as small as a new installation's (analyzed):
        // with the pool's settings the generic plan reads the primary key; the same plan made with sequential scans
        // allowed is a scan of the whole table, the plan that used to stay for the life of a pooled connection.
        await Sql.ExecuteAsync(conn, """
            CREATE TEMP TABLE plan_probe (id uuid PRIMARY KEY, status text NOT NULL);
            INSERT INTO plan_probe SELECT gen_random_uuid(), 'queued' FROM generate_series(1, 10);
            ANALYZE plan_probe;
            PREPARE record_probe(uuid[]) AS UPDATE plan_probe SET status = 'sent' WHERE id = ANY($1);
            """, ct);
        var plan = await ExplainAsync(conn, $"EXECUTE record_probe(ARRAY['{Guid.NewGuid()}']::uuid[])", ct);
        Assert.Contains("plan_probe_pkey", plan); // an index scan or a bitmap scan of it
        Assert.DoesNotContain("Seq Scan", plan);

        await Sql.ExecuteAsync(conn, "DEALLOCATE record_probe; SET enable_seqscan = on; PREPARE record_probe(uuid[]) AS UPDATE plan_probe SET status = 'sent' WHERE id = ANY($1)", ct);
        Assert.Contains("Seq Scan on plan_probe", await ExplainAsync(conn, $"EXECUTE record_probe(ARRAY['{Guid.NewGuid()}']::uuid[])", ct));
    }

    [Fact]
    public async Task Options_already_in_the_connection_string_are_kept()
    {
        var cs = new NpgsqlConnectionStringBuilder(stack.SendEngineConnectionString) { Options = "-c statement_timeout=12345" }.ConnectionString;
        await using var db = NpgsqlDataSource.Create(DataExtensions.WithGenericPlans(cs));
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("force_generic_plan", await ShowAsync(db, "plan_cache_mode", ct));
        Assert.Equal("12345ms", await ShowAsync(db, "statement_timeout", ct));
    }

    /// <summary>A connection with the dispatch pool's settings, of its own (a temporary table or a PREPARE dies with it).</summary>
    private async Task<NpgsqlConnection> OpenUnpooledAsync(CancellationToken ct)
    {
        var cs = new NpgsqlConnectionStringBuilder(DataExtensions.WithGenericPlans(stack.SendEngineConnectionString)) { Pooling = false }.ConnectionString;
        var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync(ct);
        return conn;
    }

    private static async Task<string> ExplainAsync(NpgsqlConnection conn, string execute, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("EXPLAIN " + execute, conn);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var lines = new List<string>();
        while (await reader.ReadAsync(ct))
        {
            lines.Add(reader.GetString(0));
        }
        return string.Join('\n', lines);
    }

    private static async Task<string?> ShowAsync(NpgsqlDataSource db, string setting, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand($"SHOW {setting}", conn);
        return (string?)await cmd.ExecuteScalarAsync(ct);
    }
}
