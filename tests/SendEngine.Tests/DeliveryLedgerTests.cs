using Newsletter.Contracts;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Features.Reputation;

namespace SendEngine.Tests;

/// <summary>The runner's shared connection for marks and results: many workers' requests, merged, each answered with its own rows.</summary>
public sealed class DeliveryLedgerTests(StackFixture stack)
{
    [Fact]
    public async Task Concurrent_workers_requests_are_merged_and_each_gets_exactly_its_own_marks()
    {
        const int workers = 20;
        var runner = Guid.NewGuid();
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        // A finished job, so no runner or watchdog of the fixture's Send Engine touches it.
        var jobId = Guid.CreateVersion7();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at)
            VALUES ($1, $2, $2, 'ledger', 's', 't', 'completed', now(), now())
            """, TestContext.Current.CancellationToken, jobId, Guid.NewGuid());
        var ids = await InsertAsync(db, jobId, 2 * workers);
        // A row another runner marked first: in its SMTP transaction.
        var foreign = (await InsertAsync(db, jobId, 1, "sending", Guid.NewGuid()))[0];

        await using var ledger = await DeliveryLedger.OpenAsync(db, runner, TimeProvider.System, TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
        // Worker i marks row i (worker 0 also tries the row another runner took), records it and marks row i + workers, then records that.
        var tasks = Enumerable.Range(0, workers).Select(async i =>
        {
            var first = new List<Claimed> { Row(ids[i]) };
            if (i == 0)
            {
                first.Add(Row(foreign));
            }
            var marked1 = await ledger.RecordAndMarkAsync([], first);
            var results = new List<AttemptResult> { Sent(ids[i]) };
            var marked2 = await ledger.RecordAndMarkAsync(results, [Row(ids[i + workers])]);
            Assert.Empty(results);
            await ledger.RecordAsync([Sent(ids[i + workers])]);
            return (marked1.Select(r => r.Id).ToArray(), marked2.Select(r => r.Id).ToArray());
        }).ToArray();
        var marks = await Task.WhenAll(tasks);

        for (var i = 0; i < workers; i++)
        {
            Assert.Equal([ids[i]], marks[i].Item1);
            Assert.Equal([ids[i + workers]], marks[i].Item2);
        }
        // 60 requests; without merging that is 60 round trips.
        Assert.InRange(ledger.RoundTrips, 1, 3 * workers - 1);

        var rows = new Dictionary<long, (string Status, int Attempts, string? MessageId)>();
        await using (var conn = await db.OpenConnectionAsync(TestContext.Current.CancellationToken))
        await using (var cmd = Sql.Command(conn, "SELECT id, status, attempts, message_id FROM send_job_recipients WHERE job_id = $1", jobId))
        await using (var reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken))
        {
            while (await reader.ReadAsync(TestContext.Current.CancellationToken))
            {
                rows[reader.GetInt64(0)] = (reader.GetString(1), reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetString(3));
            }
        }
        Assert.All(ids, id => Assert.Equal((RecipientStatuses.Sent, 1, $"m{id}@test"), rows[id]));
        Assert.Equal((RecipientStatuses.Sending, 1, (string?)null), rows[foreign]);
    }

    [Fact]
    public async Task Two_runners_marking_the_same_rows_each_take_a_row_at_most_once_and_together_all()
    {
        // Rows are read for delivery without a write, so two runners can read the same rows (the sweep at a job's tail):
        // the conditional mark is the only gate. Each row must go to exactly one runner, with its attempts as marked.
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var jobId = await FinishedJobAsync(db, ct);
        var ids = await InsertAsync(db, jobId, 400);
        await using var a = await DeliveryLedger.OpenAsync(db, Guid.NewGuid(), TimeProvider.System, TimeSpan.FromMinutes(1), ct);
        await using var b = await DeliveryLedger.OpenAsync(db, Guid.NewGuid(), TimeProvider.System, TimeSpan.FromMinutes(1), ct);

        async Task<List<long>> MarkAllAsync(DeliveryLedger ledger, IEnumerable<long> order)
        {
            var taken = new List<long>();
            foreach (var group in order.Chunk(8))
            {
                var marked = await ledger.RecordAndMarkAsync([], [.. group.Select(Row)]);
                Assert.All(marked, r => Assert.Equal(0, r.Attempts));
                taken.AddRange(marked.Select(r => r.Id));
            }
            return taken;
        }
        var both = await Task.WhenAll(MarkAllAsync(a, ids), MarkAllAsync(b, ids.Reverse()));

        Assert.Empty(both[0].Intersect(both[1]));
        Assert.Equal(ids, both[0].Concat(both[1]).Order());
        Assert.Equal(400L, await Sql.ScalarAsync<long>(db,
            "SELECT count(*) FROM send_job_recipients WHERE job_id = $1 AND status = 'sending' AND attempts = 1", ct, jobId));
    }

    [Fact]
    public async Task Reads_hand_concurrent_runners_disjoint_ranges_and_the_sweep_finds_rows_left_behind_except_those_held()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var jobId = await FinishedJobAsync(db, ct);
        var ids = await InsertAsync(db, jobId, 1000);
        var now = DateTimeOffset.UtcNow;

        // Eight readers at once, 100 rows each: the claim cursor gives each its own range, all rows once.
        var reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            return await RecipientStore.ReadDueAsync(conn, jobId, now, 100, [], 0, ct);
        }));
        var read = reads.SelectMany(r => r.Select(x => x.Id)).ToList();
        Assert.Equal(800, read.Count);
        Assert.Equal(800, read.Distinct().Count());
        Assert.Equal(ids.Take(800), read.Order());
        Assert.Equal(ids[799], await Sql.ScalarAsync<long>(db, "SELECT claim_cursor FROM send_jobs WHERE id = $1", ct, jobId));
        // Reading wrote no recipient row.
        Assert.Equal(1000L, await Sql.ScalarAsync<long>(db, "SELECT count(*) FROM send_job_recipients WHERE job_id = $1 AND status = 'pending' AND claimed_by IS NULL", ct, jobId));

        await using var c = await db.OpenConnectionAsync(ct);
        Assert.Equal(ids.Skip(800), (await RecipientStore.ReadDueAsync(c, jobId, now, 500, [], 0, ct)).Select(r => r.Id));
        // Past the end: the sweep from the start returns the rows still pending behind the cursor, without the held ones
        // and without a deferral not yet due.
        await Sql.ExecuteAsync(db, "UPDATE send_job_recipients SET next_attempt_at = now() + interval '1 hour' WHERE id = $1", ct, ids[1]);
        await Sql.ExecuteAsync(db, "UPDATE send_job_recipients SET status = 'sent' WHERE id = ANY($1)", ct, ids.Skip(5).ToArray());
        var swept = await RecipientStore.ReadDueAsync(c, jobId, now, 500, [ids[0], ids[3]], 0, ct);
        Assert.Equal([ids[2], ids[4]], swept.Select(r => r.Id));
    }

    [Fact]
    public async Task Sending_limit_reservations_of_rows_not_marked_or_handed_back_are_returned_and_those_of_recorded_rows_stay()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var jobId = await FinishedJobAsync(db, ct);
        var ids = await InsertAsync(db, jobId, 10);
        // A read of the ten rows reserved ten messages in a window of their tenant.
        var tenant = Guid.NewGuid();
        var window = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await Sql.ExecuteAsync(db, "INSERT INTO send_counters (tenant_id, domain, window_start, messages) VALUES ($1, '', $2, 10)", ct, tenant, window);
        var book = new LimitReservations();
        book.Reserve(ids, new LimitSlot(tenant, window, [""]));
        Task<long> Counted() => Sql.ScalarAsync<long>(db, "SELECT messages FROM send_counters WHERE tenant_id = $1", ct, tenant);

        // Another runner that read the same rows marks the first two first.
        await using (var other = await DeliveryLedger.OpenAsync(db, Guid.NewGuid(), TimeProvider.System, TimeSpan.FromMinutes(1), ct))
        {
            Assert.Equal(2, (await other.RecordAndMarkAsync([], [Row(ids[0]), Row(ids[1])])).Count);
        }
        await using var ledger = await DeliveryLedger.OpenAsync(db, Guid.NewGuid(), TimeProvider.System, TimeSpan.FromMinutes(1), ct, reservations: book);
        var marked = await ledger.RecordAndMarkAsync([], [.. ids.Take(6).Select(Row)]);
        Assert.Equal(ids[2..6], marked.Select(r => r.Id));
        // The two marks lost to the other runner gave theirs back.
        Assert.Equal(8, await Counted());
        // A marked row handed back unattempted gives its back; recorded results keep theirs.
        await ledger.UnmarkAsync([ids[5]]);
        await ledger.RecordAsync([Sent(ids[2]), Sent(ids[3]), Sent(ids[4])]);
        Assert.Equal(7, await Counted());
        // The run ends: the rows it read and never marked (four, and the one handed back is not counted twice) give theirs back.
        var left = book.TakeUnmarked();
        Assert.Equal(4, left.Length);
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            await LimitReservations.ReturnAsync(conn, left, ct);
        }
        Assert.Equal(3, await Counted());
        Assert.Empty(book.TakeUnmarked());
    }

    [Fact]
    public async Task Two_runners_of_one_job_record_results_without_waiting_for_each_others_commit()
    {
        // Each result round trip also counts the results for the reputation guard; that row stays locked until the
        // round trip's synchronous commit. A row shared by a job's runners made each wait for the other's commit.
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var jobId = await FinishedJobAsync(db, ct);
        var ids = await InsertAsync(db, jobId, 2);
        Guid runnerA = Guid.NewGuid(), runnerB = Guid.NewGuid();
        await using var a = await DeliveryLedger.OpenAsync(db, runnerA, TimeProvider.System, TimeSpan.FromMinutes(1), ct);
        await using var b = await DeliveryLedger.OpenAsync(db, runnerB, TimeProvider.System, TimeSpan.FromMinutes(1), ct);
        await a.RecordAndMarkAsync([], [Row(ids[0])]);
        await b.RecordAndMarkAsync([], [Row(ids[1])]);
        await a.RecordAsync([Sent(ids[0])]);

        // Runner A's next round trip, caught before its commit: its counter row is locked.
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        Assert.Equal(1, await Sql.ExecuteAsync(conn, tx, "UPDATE reputation_counts SET sent = sent WHERE source_id = $1", ct, runnerA));
        await b.RecordAsync([Sent(ids[1])]).WaitAsync(TimeSpan.FromSeconds(30), ct);
        await tx.RollbackAsync(ct);

        var tenant = await Sql.ScalarAsync<Guid>(db, "SELECT tenant_id FROM send_jobs WHERE id = $1", ct, jobId);
        Assert.Equal(2L, await Sql.ScalarAsync<long>(db, "SELECT sum(sent)::bigint FROM reputation_counts WHERE tenant_id = $1", ct, tenant));
    }

    private static async Task<Guid> FinishedJobAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        // A finished job, so no runner or watchdog of the fixture's Send Engine touches it.
        var jobId = Guid.CreateVersion7();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at)
            VALUES ($1, $2, $2, 'ledger', 's', 't', 'completed', now(), now())
            """, ct, jobId, Guid.NewGuid());
        return jobId;
    }

    private static Claimed Row(long id) => new(id, Guid.NewGuid(), $"r{id}@example.com", "{}", null, 0);

    private static AttemptResult Sent(long id) => new(id, RecipientStatuses.Sent, $"m{id}@test", "250 OK", null);

    /// <summary>Pending rows (or rows in <paramref name="status"/> held by <paramref name="runner"/>, one attempt made).</summary>
    private static async Task<long[]> InsertAsync(NpgsqlDataSource db, Guid jobId, int count, string status = "pending", Guid? runner = null)
    {
        await using var conn = await db.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var cmd = Sql.Command(conn, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, claimed_by, lease_until, updated_at)
            SELECT $1, gen_random_uuid(), 'r' || g || '@example.com', '{}', 'http://u', $4, CASE WHEN $2::uuid IS NULL THEN 0 ELSE 1 END, $2,
                CASE WHEN $2::uuid IS NULL THEN NULL ELSE now() + interval '1 minute' END, now()
            FROM generate_series(1, $3) g
            RETURNING id
            """, jobId, (object?)runner ?? DBNull.Value, count, status);
        var ids = new List<long>();
        await using var reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        while (await reader.ReadAsync(TestContext.Current.CancellationToken))
        {
            ids.Add(reader.GetInt64(0));
        }
        ids.Sort();
        return [.. ids];
    }
}
