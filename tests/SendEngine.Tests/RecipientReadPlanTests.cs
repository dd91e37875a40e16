using System.Text.Json;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;

namespace SendEngine.Tests;

/// <summary>
/// Delivery reads the next pending rows after the job's claim cursor. No index holds the status (so that marks and
/// results are HOT updates), and the planner's guess of how many rows are pending comes from statistics: on a table
/// not yet analysed (a new deployment's first job, every bench run) it guessed one or two, read every row of the job
/// ahead of the cursor in a bitmap scan and sorted them (30-65 ms a claim on a large list). The read is an ordered walk
/// of (job_id, id) whatever the statistics (send_job_recipients_ahead, migration DeliveryResultHot).
/// </summary>
public sealed class RecipientReadPlanTests(StackFixture stack)
{
    [Fact]
    public async Task A_claim_walks_the_job_index_from_its_cursor_on_a_table_without_statistics()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(await stack.CreateSendEngineDatabaseAsync());
        // A finished job's rows, then a running job's, none of them analysed yet.
        var (job, first) = await TwoJobsAsync(db, 20000, ct);
        await Sql.ExecuteAsync(db, "UPDATE send_jobs SET claim_cursor = $2 WHERE id = $1", ct, job, first + 999);

        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            var batch = await RecipientStore.ReadDueAsync(conn, job, DateTimeOffset.UtcNow, 500, [], 0, ct);
            Assert.Equal(Enumerable.Range(1000, 500).Select(i => first + i), batch.Select(r => r.Id));
            Assert.All(batch, r => Assert.StartsWith("new", r.MessageId));
        }
        Assert.Equal(first + 1499, await Sql.ScalarAsync<long>(db, "SELECT claim_cursor FROM send_jobs WHERE id = $1", ct, job));

        // The pages the next read touches (rolled back, the cursor stays): a walk of 500 rows is a few dozen; the
        // bitmap scan of the 18,500 rows ahead of the cursor was about a thousand.
        var (pages, plan) = await PagesAsync(db, RecipientStore.ReadAheadSql, 500, ct, job, DateTimeOffset.UtcNow, 500);
        Assert.True(pages < 200, $"{pages} pages for 500 rows: {plan}");
    }

    /// <summary>
    /// A job's reads start at its own rows whatever the table holds of earlier jobs. Written <c>job_id = $1 AND id &gt;
    /// $2 ORDER BY id</c>, the claim function's generic plan walked the primary key from the cursor and filtered on the
    /// job once the table was analysed: a job's first claim read every row of every earlier job (0.48 s behind 300k
    /// rows, growing with the table's history), and the open-work check and the sweep could do the same.
    /// </summary>
    [Fact]
    public async Task A_new_job_s_reads_do_not_walk_the_rows_of_earlier_jobs_on_an_analysed_table()
    {
        var ct = TestContext.Current.CancellationToken;
        var connectionString = await stack.CreateSendEngineDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(connectionString);
        await using var generic = NpgsqlDataSource.Create(Extensions.DataExtensions.WithGenericPlans(connectionString));
        var (job, first) = await TwoJobsAsync(db, 2000, ct);
        await Sql.ExecuteAsync(db, "ANALYZE send_job_recipients", ct);

        foreach (var source in new[] { db, generic })
        {
            // The claim cursor of a new job is 0: the walk must start at the job's first row, not at id 0. About one
            // buffer per row read is the walk of the job's own rows (at most two per row returned); the primary key's
            // walk touched the 30,000 before.
            foreach (var (sql, rows, args) in new (string, long, object[])[]
            {
                (RecipientStore.ReadAheadSql, 500, [job, DateTimeOffset.UtcNow, 500]),
                (RecipientStore.FirstOpenWorkSql, 1, [job, 0L]),
                (RecipientStore.SweepSql, 500, [job, DateTimeOffset.UtcNow, 500, Array.Empty<long>(), 0L]),
            })
            {
                var (pages, plan) = await PagesAsync(source, sql, rows, ct, args);
                Assert.True(pages < 2 * rows + 100, $"{pages} pages for {rows} rows: {plan}");
            }
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        Assert.Equal(first, await RecipientStore.FirstOpenWorkAsync(conn, job, 0, ct));
        Assert.Equal(Enumerable.Range(0, 500).Select(i => first + i), (await RecipientStore.ReadDueAsync(conn, job, DateTimeOffset.UtcNow, 500, [], 0, ct)).Select(r => r.Id));
    }

    /// <summary>A finished job of 30,000 sent rows, then a running job of <paramref name="pending"/> pending rows: the running job and its first row's id.</summary>
    private static async Task<(Guid Job, long First)> TwoJobsAsync(NpgsqlDataSource db, int pending, CancellationToken ct)
    {
        var done = Guid.CreateVersion7();
        var job = Guid.CreateVersion7();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, snapshot_completed_at, finished_at)
            VALUES ($1, $3, $3, 'finished', 's', 't', 'completed', now(), now(), now(), now(), now()),
                   ($2, $3, $3, 'running', 's', 't', 'sending', now(), now(), now(), now(), NULL)
            """, ct, done, job, Guid.NewGuid());
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, message_id, sent_at)
            SELECT $1, gen_random_uuid(), 'old' || i || '@example.com', '{}', 'sent', 1, now(), 'old' || i || '@example.com', now()
            FROM generate_series(1, 30000) i
            """, ct, done);
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, message_id)
            SELECT $1, gen_random_uuid(), 'new' || i || '@example.com', '{}', 'pending', 0, now(), 'new' || i || '@example.com'
            FROM generate_series(1, $2) i
            """, ct, job, pending);
        return (job, await Sql.ScalarAsync<long>(db, "SELECT min(id) FROM send_job_recipients WHERE job_id = $1", ct, job));
    }

    /// <summary>
    /// The buffers one execution of <paramref name="sql"/> touched (in a transaction rolled back: the claim moves the
    /// cursor), with its plan; it must return <paramref name="rows"/> rows.
    /// </summary>
    private static async Task<(long Pages, string Plan)> PagesAsync(NpgsqlDataSource source, string sql, long rows, CancellationToken ct, params object[] args)
    {
        await using var conn = await source.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var explain = Sql.Command(conn, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, args);
        var plan = (string)(await explain.ExecuteScalarAsync(ct))!;
        var top = JsonDocument.Parse(plan).RootElement[0].GetProperty("Plan");
        Assert.True(top.GetProperty("Actual Rows").GetInt64() == rows, plan);
        return (top.GetProperty("Shared Hit Blocks").GetInt64() + top.GetProperty("Shared Read Blocks").GetInt64(), plan);
    }

    [Fact]
    public async Task The_check_for_open_work_starts_where_the_run_last_found_it()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var job = Guid.CreateVersion7();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, snapshot_completed_at)
            VALUES ($1, $2, $2, 'tail', 's', 't', 'sending', now(), now(), now(), now())
            """, ct, job, Guid.NewGuid());
        // 100 rows done, one deferred (pending, due later), 10 more done.
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, next_attempt_at)
            SELECT $1, gen_random_uuid(), 'r' || i || '@example.com', '{}', CASE WHEN i = 101 THEN 'pending' ELSE 'sent' END, 1, now(),
                CASE WHEN i = 101 THEN now() + interval '30 minutes' END
            FROM generate_series(1, 111) i ORDER BY i
            """, ct, job);
        var deferred = await Sql.ScalarAsync<long>(db, "SELECT id FROM send_job_recipients WHERE job_id = $1 AND status = 'pending'", ct, job);

        await using var conn = await db.OpenConnectionAsync(ct);
        Assert.Equal(deferred, await RecipientStore.FirstOpenWorkAsync(conn, job, 0, ct));
        Assert.Equal(deferred, await RecipientStore.FirstOpenWorkAsync(conn, job, deferred, ct));
        Assert.Null(await RecipientStore.FirstOpenWorkAsync(conn, job, deferred + 1, ct));
        // While the snapshot is still copying, there is work whatever the rows say.
        await Sql.ExecuteAsync(db, "UPDATE send_jobs SET snapshot_completed_at = NULL WHERE id = $1", ct, job);
        Assert.Equal(deferred + 1, await RecipientStore.FirstOpenWorkAsync(conn, job, deferred + 1, ct));
        // The sweep starts there too: the deferred row, once due, is found from its own id and not from one past it.
        await Sql.ExecuteAsync(db, "UPDATE send_job_recipients SET next_attempt_at = NULL WHERE id = $1", ct, deferred);
        await Sql.ExecuteAsync(db, "UPDATE send_jobs SET claim_cursor = $2 WHERE id = $1", ct, job, deferred + 100);
        Assert.Equal([deferred], (await RecipientStore.ReadDueAsync(conn, job, DateTimeOffset.UtcNow, 10, [], deferred, ct)).Select(r => r.Id));
        Assert.Empty(await RecipientStore.ReadDueAsync(conn, job, DateTimeOffset.UtcNow, 10, [], deferred + 1, ct));
    }
}
