using System.Net.Http.Json;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
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
        // A row per case: back to pending after a transient failure, read but never marked by a dead runner (pending,
        // as reading writes nothing), sending by a dead runner, sending by a live one (its runner records it), and one
        // already sent.
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, claimed_by, lease_until, updated_at)
            VALUES ($1, gen_random_uuid(), 'pending@example.com', '{}', 'http://u', 'pending', 1, NULL, NULL, now()),
                   ($1, gen_random_uuid(), 'read@example.com', '{}', 'http://u', 'pending', 0, NULL, NULL, now()),
                   ($1, gen_random_uuid(), 'sending@example.com', '{}', 'http://u', 'sending', 1, $2, now() - interval '1 minute', now()),
                   ($1, gen_random_uuid(), 'live@example.com', '{}', 'http://u', 'sending', 1, $2, now() + interval '1 minute', now()),
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
        Assert.Equal(RecipientStatuses.Cancelled, rows["read@example.com"].Status);
        Assert.Equal((RecipientStatuses.Unknown, RecipientStore.RunnerStoppedOutcome), rows["sending@example.com"]);
        Assert.Equal(RecipientStatuses.Sending, rows["live@example.com"].Status);
        Assert.Equal(RecipientStatuses.Sent, rows["sent@example.com"].Status);
    }

    [Fact]
    public async Task A_sending_job_whose_runner_died_is_restarted_by_the_watchdog_and_completes()
    {
        var ct = TestContext.Current.CancellationToken;
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        string A(string local) => $"{local}@{domain}";
        await stack.SubscribeAsync(tenant, [A("pending"), A("read"), A("sending"), A("sent")]);
        var cs = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(cs);
        _ = engine.Server; // migrated, Hangfire running, the watchdog registered
        await using var db = NpgsqlDataSource.Create(cs);

        // What a runner killed mid-send leaves when its Hangfire job is gone too (storage lost, or retries used up): a job
        // 'sending' for five minutes with its runner lease long expired, a row it had read (still pending: its claim
        // cursor is past it) and one in an SMTP transaction with an expired lease.
        var jobId = Guid.CreateVersion7();
        var subject = "Watchdog " + Guid.NewGuid().ToString("N")[..8];
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, snapshot_completed_at,
                runner_lease_until, claim_cursor)
            VALUES ($1, $2, $3, 'orphan', $4, 'Hi', 'sending', now() - interval '5 minutes', now() - interval '5 minutes',
                    now() - interval '5 minutes', now() - interval '5 minutes', now() - interval '4 minutes', 9223372036854775807)
            """, ct, jobId, Guid.Parse(tenant.TenantId), Guid.Parse(tenant.ListId), subject);
        var deadRunner = Guid.NewGuid();
        await Sql.ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, unsubscribe_url, status, attempts, claimed_by, lease_until, updated_at)
            VALUES ($1, gen_random_uuid(), $3, '{}', 'http://u', 'pending', 0, NULL, NULL, now() - interval '5 minutes'),
                   ($1, gen_random_uuid(), $4, '{}', 'http://u', 'pending', 0, NULL, NULL, now() - interval '5 minutes'),
                   ($1, gen_random_uuid(), $5, '{}', 'http://u', 'sending', 1, $2, now() - interval '4 minutes', now() - interval '5 minutes'),
                   ($1, gen_random_uuid(), $6, '{}', 'http://u', 'sent', 1, NULL, NULL, now() - interval '5 minutes')
            """, ct, jobId, deadRunner, A("pending"), A("read"), A("sending"), A("sent"));
        Assert.Equal(0L, await RunnerJobsAsync(db, jobId, ct));

        // The watchdog's recurring job, now rather than at the next minute.
        engine.Services.GetRequiredService<IRecurringJobManager>().Trigger(SendJobWatchdog.RecurringJobId);

        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var done = await StackFixture.WaitForJobAsync(se, jobId.ToString(), j => j.Status == SendJobStatuses.Completed);
        Assert.True(await RunnerJobsAsync(db, jobId, ct) >= 1, "no runner was enqueued for the job");
        Assert.Equal((4, 3, 0, 1, 0), (done.Counts.Total, done.Counts.Sent, done.Counts.Failed, done.Counts.Unknown, done.Counts.Remaining));
        var rows = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=100", StackFixture.Json, ct))!.Items
            .ToDictionary(r => r.Email);
        Assert.Equal(RecipientStatuses.Sent, rows[A("pending")].Status);
        Assert.Equal(RecipientStatuses.Sent, rows[A("read")].Status);
        Assert.Equal(RecipientStatuses.Unknown, rows[A("sending")].Status);
        Assert.StartsWith("outcome unknown", rows[A("sending")].Detail);

        // Mailed by the restarted runner: the two never attempted, once each; not the one in doubt, not the one already sent.
        await stack.Mail.WaitForMailAsync(m => m.Subject == subject && m.To.Contains(A("pending")), TimeSpan.FromSeconds(30), ct);
        await stack.Mail.WaitForMailAsync(m => m.Subject == subject && m.To.Contains(A("read")), TimeSpan.FromSeconds(30), ct);
        var received = (await stack.Mail.ListAsync(ct)).Where(m => m.Subject == subject).SelectMany(m => m.To).Order().ToList();
        Assert.Equal([A("pending"), A("read")], received);
    }

    [Fact]
    public async Task A_running_job_whose_runner_lease_is_live_is_not_stalled_even_with_no_row_in_an_attempt()
    {
        // Rows read for delivery carry no lease until marked, so between groups a live runner may hold no leased row:
        // the job's runner lease is what the watchdog trusts.
        var ct = TestContext.Current.CancellationToken;
        await using var db = NpgsqlDataSource.Create(stack.SendEngineConnectionString);
        var store = new RecipientStore(db, TimeProvider.System, NullLogger<RecipientStore>.Instance);
        async Task<Guid> JobAsync(string runnerLease)
        {
            var id = Guid.CreateVersion7();
            await Sql.ExecuteAsync(db, $"""
                INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_text, status, scheduled_at, created_at, started_at, snapshot_completed_at, runner_lease_until)
                VALUES ($1, $2, $2, 'lease', 's', 't', 'sending', now() - interval '5 minutes', now() - interval '5 minutes', now() - interval '5 minutes',
                        now() - interval '5 minutes', now() + interval '{runnerLease}')
                """, ct, id, Guid.NewGuid());
            await Sql.ExecuteAsync(db, """
                INSERT INTO send_job_recipients (job_id, subscriber_id, email, preferences, status, attempts, updated_at)
                VALUES ($1, gen_random_uuid(), 'due@example.com', '{}', 'pending', 0, now())
                """, ct, id);
            return id;
        }
        var live = await JobAsync("1 minute");
        var dead = await JobAsync("-1 minute");
        try
        {
            var stalled = await store.FindStalledAsync(ct);
            Assert.DoesNotContain(live, stalled);
            Assert.Contains(dead, stalled);
        }
        finally
        {
            // Not left for the fixture's watchdog to start.
            await Sql.ExecuteAsync(db, "UPDATE send_jobs SET status = 'cancelled', cancelled_at = now(), finished_at = now() WHERE id = ANY($1)", ct,
                new[] { live, dead });
        }
    }

    /// <summary>Hangfire jobs that run <paramref name="jobId"/> (RunAsync or DeliverAsync) in that Send Engine's storage.</summary>
    private static Task<long> RunnerJobsAsync(NpgsqlDataSource db, Guid jobId, CancellationToken ct) =>
        Sql.ScalarAsync<long>(db, "SELECT count(*) FROM hangfire.job WHERE invocationdata::text LIKE '%SendJobRunner%' AND arguments::text LIKE '%' || $1 || '%'",
            ct, jobId.ToString());

    /// <summary>The watchdog may restart other tests' jobs; here nothing is enqueued.</summary>
    private sealed class NoJobs : IBackgroundJobClient
    {
        public string Create(Job job, IState state) => "none";

        public bool ChangeState(string jobId, IState state, string expectedState) => false;
    }
}
