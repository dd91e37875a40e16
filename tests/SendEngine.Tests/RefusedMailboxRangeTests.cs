using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;

namespace SendEngine.Tests;

/// <summary>
/// A run turns the mailboxes a server refused (550 5.1.1 and kin) into suppressions every 10 s. It reads only the rows
/// closed since it last looked (ids below the first open row, <see cref="DeliveryRun.OpenFrom"/>), so a long job is not
/// read whole every 10 s; the run's end reads the rest.
/// </summary>
public sealed class RefusedMailboxRangeTests(StackFixture stack)
{
    [Fact]
    public async Task Refused_mailboxes_are_read_in_the_range_asked_for_and_added_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var (job, tenant) = (Guid.CreateVersion7(), Guid.NewGuid());
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, snapshot_completed_at)
            VALUES ($1, $2, $2, 'refused', 's', 't', 'sending', now(), now(), now(), now())
            """, ct, job, tenant);
        // Refused, sent, refused, deferred (open), refused.
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at, detail)
            SELECT $1, gen_random_uuid(), 'r' || i || '@example.com', '{}', s, 1, now(), d
            FROM unnest(ARRAY[1, 2, 3, 4, 5], ARRAY['failed', 'sent', 'failed', 'pending', 'failed'],
                        ARRAY['550 5.1.1 user unknown', '250 ok', '550 5.2.1 mailbox disabled', '451 try later', '550 5.1.1 no such user'])
                AS x(i, s, d)
            ORDER BY i
            """, ct, job);
        var open = await Sql.ScalarAsync<long>(db, "SELECT id FROM send_job_recipients WHERE job_id = $1 AND status = 'pending'", ct, job);
        async Task<string[]> SuppressedAsync() =>
            [.. (await TestDatabase.QueryAsync(stack.SendEngineConnectionString, "SELECT email FROM suppressions WHERE tenant_id = $1 ORDER BY email", tenant))
                .Select(r => (string)r[0])];

        // The rows below the open one: the two refused there.
        await DeliveryHousekeeping.AddRefusedMailboxesAsync(db, job, TimeProvider.System, NullLogger.Instance, 0, open, ct);
        Assert.Equal(["r1@example.com", "r3@example.com"], await SuppressedAsync());
        // Asked again (another runner of the job): nothing twice, neither suppression nor report.
        await DeliveryHousekeeping.AddRefusedMailboxesAsync(db, job, TimeProvider.System, NullLogger.Instance, 0, open, ct);
        // The run's end: the rest.
        await DeliveryHousekeeping.AddRefusedMailboxesAsync(db, job, TimeProvider.System, NullLogger.Instance, open, long.MaxValue, ct);
        Assert.Equal(["r1@example.com", "r3@example.com", "r5@example.com"], await SuppressedAsync());
        Assert.Equal(3, await Sql.ScalarAsync<long>(db, "SELECT count(*) FROM member_center_reports WHERE tenant_id = $1", ct, tenant));
    }
}
