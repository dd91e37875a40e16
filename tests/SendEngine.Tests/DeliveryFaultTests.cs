using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// Whole send jobs against a real relay that misbehaves (fault_smtp.py): a lost end-of-DATA reply gives one copy and an
/// unknown recipient, never a second copy; a relay outage pauses the job, which resumes by itself and mails everyone
/// once; a refused credential pauses it for an operator, and resume after the fix delivers the rest.
/// </summary>
[LongRunning(170)]
public sealed class DeliveryFaultTests(StackFixture stack, DurablePostgres durable) : IClassFixture<DurablePostgres>
{
    private async Task<(SendEngineFactory Engine, HttpClient Client)> EngineAsync(TestTenant tenant, FaultSmtpServer relay, Dictionary<string, string?> extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["SendJobs:OutageRetryDelay"] = "00:00:01",
            ["SendJobs:OutageRetryMaxDelay"] = "00:00:02",
        };
        foreach (var (k, v) in extra)
        {
            settings[k] = v;
        }
        var engine = stack.CreateSendEngine(await durable.Server.CreateDatabaseAsync("se"), settings);
        var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        return (engine, client);
    }

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient client, TestTenant tenant, string subject)
    {
        using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "Hi {{ email }}", null), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    private static async Task<List<SendJobRecipientResponse>> RecipientsAsync(HttpClient client, string jobId)
    {
        var page = await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=500", StackFixture.Json);
        return [.. page!.Items];
    }

    /// <summary>Every address the relay took, and how often: nobody twice, and every recipient recorded sent arrived.</summary>
    private static async Task AssertEachMailedOnceAsync(FaultSmtpServer relay, List<SendJobRecipientResponse> rows)
    {
        // The relay reports what it took on its stdout, a moment after its reply: wait for the sent rows' copies.
        foreach (var row in rows.Where(r => r.Status == RecipientStatuses.Sent))
        {
            await relay.WaitForCopiesAsync(row.MessageId!, 1, TimeSpan.FromSeconds(10));
        }
        var copies = relay.Accepted.GroupBy(a => a.Recipient).ToDictionary(g => g.Key, g => g.Count());
        var twice = copies.Where(c => c.Value > 1).Select(c => c.Key).ToList();
        Assert.True(twice.Count == 0, "mailed twice: " + string.Join(", ", twice));
        foreach (var row in rows.Where(r => r.Status == RecipientStatuses.Sent))
        {
            Assert.True(copies.ContainsKey(row.Email), $"{row.Email} is recorded sent but never reached the relay");
        }
        Assert.Subset(rows.Select(r => r.Email).ToHashSet(), copies.Keys.ToHashSet());
    }

    [Theory]
    [InlineData("--data-delay", "6")] // the relay queues the message and answers after the data timeout
    [InlineData("--drop-after-data", null)] // the relay queues the message and drops the connection without answering
    public async Task A_lost_end_of_DATA_reply_leaves_one_copy_and_an_unknown_recipient_that_is_never_retried(string fault, string? value)
    {
        string[] options = value is null ? [fault] : [fault, value];
        await using var relay = await FaultSmtpServer.StartAsync(options);
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(1, "lost");
        var (engine, client) = await EngineAsync(tenant, relay, new()
        {
            ["Smtp:CommandTimeout"] = "00:00:02",
            ["Smtp:DataTimeout"] = "00:00:02",
        });
        await using var _ = engine;
        using var __ = client;

        var job = await CreateJobAsync(client, tenant, "Lost reply");
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);

        Assert.Equal((1, 0, 0, 1), (done.Counts.Total, done.Counts.Sent, done.Counts.Failed, done.Counts.Unknown));
        var row = Assert.Single(await RecipientsAsync(client, job.Id));
        Assert.Equal((emails[0], RecipientStatuses.Unknown, 1), (row.Email, row.Status, row.Attempts));
        Assert.StartsWith("outcome unknown: ", row.Detail);
        Assert.NotNull(row.MessageId);
        // Well past the relay's delay and any retry backoff: still the one copy.
        await Task.Delay(TimeSpan.FromSeconds(8), TestContext.Current.CancellationToken);
        Assert.Equal(1, relay.CopiesOf(row.MessageId!));
        Assert.Single(relay.Accepted);
    }

    [Fact]
    public async Task A_relay_outage_mid_job_pauses_the_job_which_resumes_by_itself_and_mails_everyone_once()
    {
        const int recipients = 40;
        await using var relay = await FaultSmtpServer.StartAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "outage");
        var (engine, client) = await EngineAsync(tenant, relay, new()
        {
            ["Delivery:MessagesPerSecond"] = "10",
            ["Delivery:Concurrency"] = "2",
            ["SendJobs:BatchSize"] = "5",
        });
        await using var _ = engine;
        using var __ = client;

        // The relay goes down by itself after its 10th message: a job of 4 s must not finish while a loaded machine
        // polls for its progress (CI saw it complete before the test stopped the relay).
        await relay.SetAsync("stop_after", "10");
        var job = await CreateJobAsync(client, tenant, "Outage");
        var paused = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Paused);
        Assert.Contains("unavailable", paused.PausedReason);
        Assert.NotNull(paused.ResumeAt);
        Assert.True(paused.Counts.Remaining > 0, "the outage began after the job was done");
        // Down for a while: the job keeps trying (each try pauses it again: two more pauses waited for), and nothing is
        // counted as failed.
        await StackFixture.WaitForOutagePausesAsync(client, job.Id, 3);
        var waiting = await client.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal(0, waiting!.Counts.Failed);
        Assert.NotEqual(SendJobStatuses.Failed, waiting.Status);
        await relay.StartListeningAsync();

        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(120));
        Assert.Equal(recipients, done.Counts.Total);
        Assert.Equal(0, done.Counts.Failed);
        Assert.Null(done.PausedReason);
        // Only a transaction cut at the very moment of the outage, after its final dot, may be unknown.
        Assert.InRange(done.Counts.Unknown, 0, 2);
        Assert.Equal(recipients, done.Counts.Sent + done.Counts.Unknown);
        var rows = await RecipientsAsync(client, job.Id);
        await AssertEachMailedOnceAsync(relay, rows);
        Assert.Equal(emails.Order(), rows.Select(r => r.Email).Order());
        // The paused tries were not attempts: a recipient is attempted once.
        Assert.All(rows, r => Assert.Equal(1, r.Attempts));
    }

    [Fact]
    public async Task An_outage_longer_than_GiveUpAfter_leaves_the_job_paused_for_an_operator_and_resume_delivers_it()
    {
        await using var relay = await FaultSmtpServer.StartAsync();
        await relay.StopListeningAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(3, "giveup");
        var (engine, client) = await EngineAsync(tenant, relay, new() { ["SendJobs:GiveUpAfter"] = "00:00:03" });
        await using var _ = engine;
        using var __ = client;

        var job = await CreateJobAsync(client, tenant, "Give up");
        var waiting = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Paused && j.ResumeAt is null);
        Assert.StartsWith("gave up after", waiting.PausedReason);
        Assert.Contains("unavailable", waiting.PausedReason);
        Assert.Equal((3, 0, 0, 3), (waiting.Counts.Total, waiting.Counts.Sent, waiting.Counts.Failed, waiting.Counts.Remaining));

        await relay.StartListeningAsync();
        using var resumed = await client.PostAsync($"api/send-jobs/{job.Id}/resume", null);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(3, done.Counts.Sent);
        await AssertEachMailedOnceAsync(relay, await RecipientsAsync(client, job.Id));
        Assert.Equal(emails.Order(), relay.Accepted.Select(a => a.Recipient).Order());
    }

    [Fact]
    public async Task A_refused_credential_pauses_the_job_for_an_operator_and_resume_after_the_fix_mails_everyone_once()
    {
        const int recipients = 6;
        await using var relay = await FaultSmtpServer.StartAsync("--password", "the-right-one");
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "auth");
        var (engine, client) = await EngineAsync(tenant, relay, new()
        {
            ["Smtp:Username"] = "sender",
            ["Smtp:Password"] = "a-wrong-one",
        });
        await using var _ = engine;
        using var __ = client;

        var job = await CreateJobAsync(client, tenant, "Credential");
        var paused = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Paused);
        Assert.Contains("535", paused.PausedReason);
        Assert.Null(paused.ResumeAt); // waits for an operator, not for a timer
        Assert.Equal((recipients, 0, 0), (paused.Counts.Total, paused.Counts.Sent, paused.Counts.Failed));
        // Nothing retries it by itself.
        await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
        Assert.Equal(SendJobStatuses.Paused, (await client.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json))!.Status);
        Assert.Empty(relay.Accepted);

        // The operator fixes the credential (here: the relay now takes the password the engine has) and resumes.
        await relay.SetAsync("password", "a-wrong-one");
        using var resumed = await client.PostAsync($"api/send-jobs/{job.Id}/resume", null);
        var resumedJob = await StackFixture.ReadAsync<SendJobResponse>(resumed, HttpStatusCode.OK);
        Assert.Equal(SendJobStatuses.Sending, resumedJob.Status);
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal((recipients, recipients, 0), (done.Counts.Total, done.Counts.Sent, done.Counts.Unknown));
        var rows = await RecipientsAsync(client, job.Id);
        await AssertEachMailedOnceAsync(relay, rows);
        Assert.Equal(emails.Order(), relay.Accepted.Select(a => a.Recipient).Order());

        // A finished job cannot be resumed.
        using var again = await client.PostAsync($"api/send-jobs/{job.Id}/resume", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task A_PostgreSQL_crash_mid_job_loses_no_sending_mark_and_nobody_is_mailed_twice()
    {
        // Send Engine's own server with fsync and synchronous commit on, crashed (pg_ctl restart -m immediate: no
        // checkpoint, uncommitted work lost). Every 'sending' mark was committed before its message left, so a row whose
        // result was lost becomes unknown, never mailed again; at most connections × group size of them (the bound
        // docs/send-engine.md states).
        // 6 s of sending at 40/s: the crash must land mid-job even when polling the job is slow (a loaded CI machine).
        const int recipients = 240;
        const int connections = 2;
        const int groupSize = 4;
        await using var relay = await FaultSmtpServer.StartAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "pgcrash");
        await using var postgres = await PostgresServer.StartDurableAsync(TestContext.Current.CancellationToken);
        var settings = stack.SendEngineSettings(await postgres.CreateDatabaseAsync("se"), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            // 40/s with a 50 ms bucket lets groups of two form: the bound below is per group, not per message.
            ["Delivery:MessagesPerSecond"] = "40",
            ["Delivery:Concurrency"] = connections.ToString(CultureInfo.InvariantCulture),
            ["Delivery:GroupSize"] = groupSize.ToString(CultureInfo.InvariantCulture),
            ["SendJobs:BatchSize"] = "4",
            ["SendJobs:Lease"] = "00:00:03",
            ["Hangfire:InvisibilityTimeout"] = "00:00:05",
        });
        await using var engine = new SendEngineFactory(settings);
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var job = await CreateJobAsync(client, tenant, "Crash");
        await StackFixture.WaitForJobAsync(client, job.Id, j => j.Counts.Sent >= 6);

        await postgres.RestartImmediateAsync(TestContext.Current.CancellationToken);
        Assert.True(relay.Accepted.Count < recipients, "the job finished before the crash");

        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(240));
        Assert.Equal((recipients, 0, 0), (done.Counts.Total, done.Counts.Remaining, done.Counts.Failed));
        Assert.InRange(done.Counts.Unknown, 0, connections * groupSize);
        Assert.Equal(recipients, done.Counts.Sent + done.Counts.Unknown);
        var rows = await RecipientsAsync(client, job.Id);
        Assert.All(rows.Where(r => r.Status == RecipientStatuses.Unknown), r => Assert.StartsWith("outcome unknown", r.Detail));
        await AssertEachMailedOnceAsync(relay, rows);
        Assert.Equal(emails.Order(), rows.Select(r => r.Email).Order());
    }
}
