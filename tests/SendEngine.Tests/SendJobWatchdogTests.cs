using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.Logging.Abstractions;
using Newsletter.Contracts;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;

namespace SendEngine.Tests;

public sealed class SendJobWatchdogTests(StackFixture stack)
{
    [Fact]
    public async Task A_cancelled_job_whose_runner_died_is_settled_so_nothing_stays_remaining()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var jobId = Guid.CreateVersion7();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, cancelled_at, finished_at)
            VALUES ($1, $2, $2, 'watchdog', 's', 't', 'cancelled', now(), now(), now(), now(), now())
            """, ct, jobId, Guid.NewGuid());
        // A row per case: back to pending after a transient failure, claimed and sending by a dead runner, claimed by
        // a live one (its runner settles it), and one already sent.
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, claimed_by, lease_until, updated_at)
            VALUES ($1, gen_random_uuid(), 'pending@example.com', '{}', 'http://u', 'pending', 1, NULL, NULL, now()),
                   ($1, gen_random_uuid(), 'claimed@example.com', '{}', 'http://u', 'claimed', 0, $2, now() - interval '1 minute', now()),
                   ($1, gen_random_uuid(), 'sending@example.com', '{}', 'http://u', 'sending', 1, $2, now() - interval '1 minute', now()),
                   ($1, gen_random_uuid(), 'live@example.com', '{}', 'http://u', 'claimed', 0, $2, now() + interval '1 minute', now()),
                   ($1, gen_random_uuid(), 'sent@example.com', '{}', 'http://u', 'sent', 1, NULL, NULL, now())
            """, ct, jobId, Guid.NewGuid());

        var store = new RecipientStore(db, TimeProvider.System, NullLogger<RecipientStore>.Instance);
        await new SendJobWatchdog(store, new NoJobs(), NullLogger<SendJobWatchdog>.Instance).RunAsync(ct);

        var rows = new Dictionary<string, (string Status, string? Detail)>();
        await using (var conn = await db.OpenConnectionAsync(ct))
        await using (var cmd = Sql.Command(conn, "SELECT email, status, detail FROM send_job_recipients WHERE job_id = $1", jobId))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows[reader.GetString(0)] = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
            }
        }
        Assert.Equal(RecipientStatuses.Cancelled, rows["pending@example.com"].Status);
        Assert.Equal(RecipientStatuses.Cancelled, rows["claimed@example.com"].Status);
        Assert.Equal((RecipientStatuses.Unknown, RecipientStore.RunnerStoppedOutcome), rows["sending@example.com"]);
        Assert.Equal(RecipientStatuses.Claimed, rows["live@example.com"].Status);
        Assert.Equal(RecipientStatuses.Sent, rows["sent@example.com"].Status);
    }

    /// <summary>The watchdog may restart other tests' jobs; here nothing is enqueued.</summary>
    private sealed class NoJobs : IBackgroundJobClient
    {
        public string Create(Job job, IState state) => "none";

        public bool ChangeState(string jobId, IState state, string expectedState) => false;
    }
}
