using Newsletter.Contracts;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;

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
        var ids = await InsertClaimedAsync(db, jobId, runner, 2 * workers);
        var foreign = (await InsertClaimedAsync(db, jobId, Guid.NewGuid(), 1))[0];

        await using var ledger = await DeliveryLedger.OpenAsync(db, runner, TimeProvider.System, TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
        // Worker i marks row i (worker 0 also tries another runner's row), records it and marks row i + workers, then records that.
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
        Assert.Equal((RecipientStatuses.Claimed, 0, (string?)null), rows[foreign]);
    }

    private static Claimed Row(long id) => new(id, Guid.NewGuid(), $"r{id}@example.com", "{}", null, 0);

    private static AttemptResult Sent(long id) => new(id, RecipientStatuses.Sent, $"m{id}@test", "250 OK", null);

    private static async Task<long[]> InsertClaimedAsync(NpgsqlDataSource db, Guid jobId, Guid runner, int count)
    {
        await using var conn = await db.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var cmd = Sql.Command(conn, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, claimed_by, lease_until, updated_at)
            SELECT $1, gen_random_uuid(), 'r' || g || '@example.com', '{}', 'http://u', 'claimed', 0, $2, now() + interval '1 minute', now()
            FROM generate_series(1, $3) g
            RETURNING id
            """, jobId, runner, count);
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
