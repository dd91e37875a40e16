using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// An operator's hands on a job (seed 002's trigger/retry/resolve, plus pause): each against a real relay
/// (fault_smtp.py, which counts what it took), with the state changes seen through the API.
/// </summary>
public sealed class SendJobOperationsTests(StackFixture stack)
{
    private async Task<(SendEngineFactory Engine, HttpClient Client)> EngineAsync(TestTenant tenant, FaultSmtpServer relay, Dictionary<string, string?> extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (k, v) in extra)
        {
            settings[k] = v;
        }
        var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), settings);
        var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        return (engine, client);
    }

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient client, TestTenant tenant, string subject, string? scheduledAt = null)
    {
        using var created = await client.PostAsJsonAsync("api/send-jobs",
            new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "Hi {{ email }}", scheduledAt), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    private static async Task<List<SendJobRecipientResponse>> RecipientsAsync(HttpClient client, string jobId, string? status = null)
    {
        var page = await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=500" + (status is null ? "" : "&status=" + status), StackFixture.Json);
        return [.. page!.Items];
    }

    private static async Task<SendJobResponse> PostAsync(HttpClient client, string url, HttpStatusCode expected = HttpStatusCode.OK, object? body = null)
    {
        using var response = body is null ? await client.PostAsync(url, null) : await client.PostAsJsonAsync(url, body, StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(response, expected);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>The relay took each address exactly once, and every address of the list.</summary>
    private static async Task AssertEachMailedOnceAsync(FaultSmtpServer relay, IReadOnlyCollection<string> emails, List<SendJobRecipientResponse> rows)
    {
        foreach (var row in rows.Where(r => r.Status == RecipientStatuses.Sent))
        {
            await relay.WaitForCopiesAsync(row.MessageId!, 1, TimeSpan.FromSeconds(10));
        }
        var copies = relay.Accepted.GroupBy(a => a.Recipient).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(copies.All(c => c.Value == 1), "mailed more than once: " + string.Join(", ", copies.Where(c => c.Value > 1).Select(c => c.Key)));
        Assert.Equal(emails.Order(), copies.Keys.Order());
    }

    [Fact]
    public async Task Pause_stops_claiming_mid_job_and_resume_completes_it_with_each_recipient_mailed_once()
    {
        const int recipients = 30;
        // A slow relay: each end of DATA is answered after 0.3 s, so the job is still running when it is paused.
        await using var relay = await FaultSmtpServer.StartAsync("--data-delay", "0.3");
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "pause");
        var (engine, client) = await EngineAsync(tenant, relay, new() { ["Delivery:Concurrency"] = "2", ["SendJobs:BatchSize"] = "4", ["Delivery:GroupSize"] = "1" });
        await using var _ = engine;
        using var __ = client;

        var job = await CreateJobAsync(client, tenant, "Pause me");
        await StackFixture.WaitForJobAsync(client, job.Id, j => j.Counts.Sent >= 4);
        var paused = await PostAsync(client, $"api/send-jobs/{job.Id}/pause");
        Assert.Equal(SendJobStatuses.Paused, paused.Status);
        Assert.Null(paused.ResumeAt);
        Assert.Contains("operator", paused.PausedReason);

        // In-flight messages finish; then nothing is marked or sent while paused.
        var stillOpen = await RecipientsAsync(client, job.Id);
        for (var i = 0; i < 50 && stillOpen.Any(r => r.Status == RecipientStatuses.Sending); i++)
        {
            await Task.Delay(200, TestContext.Current.CancellationToken);
            stillOpen = await RecipientsAsync(client, job.Id);
        }
        Assert.DoesNotContain(stillOpen, r => r.Status == RecipientStatuses.Sending);
        var takenAtPause = relay.Accepted.Count;
        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
        var waiting = await client.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal(SendJobStatuses.Paused, waiting!.Status);
        Assert.Equal(takenAtPause, relay.Accepted.Count);
        Assert.True(waiting.Counts.Remaining > 0, "the job was done before the pause took effect");
        Assert.True(waiting.Counts.Sent < recipients);

        // Pausing again is a conflict; resume goes on with the same job.
        using (var again = await client.PostAsync($"api/send-jobs/{job.Id}/pause", null))
        {
            await AssertProblemAsync(again, HttpStatusCode.Conflict);
        }
        var resumed = await PostAsync(client, $"api/send-jobs/{job.Id}/resume");
        Assert.Equal(SendJobStatuses.Sending, resumed.Status);
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal((recipients, recipients, 0), (done.Counts.Total, done.Counts.Sent, done.Counts.Unknown));
        await AssertEachMailedOnceAsync(relay, emails, await RecipientsAsync(client, job.Id));
    }

    [Fact]
    public async Task Pause_of_a_scheduled_job_keeps_it_from_starting_and_trigger_starts_a_scheduled_job_now()
    {
        await using var relay = await FaultSmtpServer.StartAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(3, "trigger");
        var (engine, client) = await EngineAsync(tenant, relay, []);
        await using var _ = engine;
        using var __ = client;
        var later = DateTimeOffset.UtcNow.AddHours(1).ToString("O", CultureInfo.InvariantCulture);

        // Paused before its time: resume puts it back to scheduled (its time is still ahead), not running.
        var first = await CreateJobAsync(client, tenant, "Paused before its time", later);
        Assert.Equal(SendJobStatuses.Paused, (await PostAsync(client, $"api/send-jobs/{first.Id}/pause")).Status);
        using (var notScheduled = await client.PostAsync($"api/send-jobs/{first.Id}/trigger", null))
        {
            await AssertProblemAsync(notScheduled, HttpStatusCode.Conflict);
        }
        Assert.Equal(SendJobStatuses.Scheduled, (await PostAsync(client, $"api/send-jobs/{first.Id}/resume")).Status);

        var job = await CreateJobAsync(client, tenant, "Triggered", later);
        var triggered = await PostAsync(client, $"api/send-jobs/{job.Id}/trigger");
        Assert.True(triggered.ScheduledAt < DateTimeOffset.UtcNow.AddMinutes(1), $"scheduled_at is still {triggered.ScheduledAt}");
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(3, done.Counts.Sent);
        await AssertEachMailedOnceAsync(relay, emails, await RecipientsAsync(client, job.Id));
        using (var twice = await client.PostAsync($"api/send-jobs/{job.Id}/trigger", null))
        {
            await AssertProblemAsync(twice, HttpStatusCode.Conflict);
        }
        // The first job, still scheduled for later, sent nothing.
        var waiting = await client.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{first.Id}", StackFixture.Json);
        Assert.Equal((SendJobStatuses.Scheduled, 0), (waiting!.Status, waiting.Counts.Sent));
    }

    [Fact]
    public async Task Retry_failed_re_sends_only_the_failed_recipients_in_the_same_job()
    {
        const int recipients = 12;
        await using var relay = await FaultSmtpServer.StartAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "retry");
        var (engine, client) = await EngineAsync(tenant, relay, new()
        {
            ["Delivery:Concurrency"] = "1",
            ["Delivery:GroupSize"] = "1",
            ["Delivery:MessagesPerSecond"] = "5",
            ["SendJobs:BatchSize"] = "2",
        });
        await using var _ = engine;
        using var __ = client;

        // Part of the job goes out; then the relay refuses every recipient permanently (a policy refusal, not an
        // unknown mailbox, so nothing is suppressed): those rows fail.
        var job = await CreateJobAsync(client, tenant, "Retry");
        await StackFixture.WaitForJobAsync(client, job.Id, j => j.Counts.Sent >= 3);
        await relay.SetAsync("rcpt_reply", "550 5.7.1 Rejected by policy");
        var first = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.True(first.Counts.Failed > 0 && first.Counts.Sent > 0, $"expected both sent and failed rows: {first.Counts}");
        var before = await RecipientsAsync(client, job.Id);
        var sentBefore = before.Where(r => r.Status == RecipientStatuses.Sent).ToDictionary(r => r.Email, r => r.MessageId);
        var failedBefore = before.Where(r => r.Status == RecipientStatuses.Failed).Select(r => r.Email).ToHashSet();
        Assert.All(before.Where(r => r.Status == RecipientStatuses.Failed), r => Assert.Contains("5.7.1", r.Detail));

        await relay.SetAsync("rcpt_reply", "-");
        var retried = await PostAsync(client, $"api/send-jobs/{job.Id}/retry-failed");
        Assert.Equal(job.Id, retried.Id);
        Assert.Equal(SendJobStatuses.Sending, retried.Status);
        Assert.Equal(0, retried.Counts.Failed);
        // The runner may have sent one already before the answer was counted: remaining plus newly sent is every failed row.
        Assert.Equal(failedBefore.Count, retried.Counts.Remaining + retried.Counts.Sent - sentBefore.Count);

        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal((recipients, recipients, 0), (done.Counts.Total, done.Counts.Sent, done.Counts.Failed));
        var after = await RecipientsAsync(client, job.Id);
        // The rows sent the first time were not touched; every address reached the relay exactly once.
        foreach (var (email, messageId) in sentBefore)
        {
            Assert.Equal(messageId, after.Single(r => r.Email == email).MessageId);
        }
        await AssertEachMailedOnceAsync(relay, emails, after);
        // Still one job for the tenant, and nothing left to retry.
        var jobs = await client.GetFromJsonAsync<SendJobPage>("api/send-jobs", StackFixture.Json);
        Assert.Single(jobs!.Items);
        using var nothing = await client.PostAsync($"api/send-jobs/{job.Id}/retry-failed", null);
        await AssertProblemAsync(nothing, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Resolve_acknowledges_unknown_outcomes_recording_who_and_when_and_refuses_other_rows()
    {
        await using var relay = await FaultSmtpServer.StartAsync("--drop-after-data");
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(3, "resolve");
        var (engine, client) = await EngineAsync(tenant, relay, new() { ["Smtp:CommandTimeout"] = "00:00:02", ["Smtp:DataTimeout"] = "00:00:02" });
        await using var _ = engine;
        using var __ = client;

        var job = await CreateJobAsync(client, tenant, "Lost replies");
        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(3, done.Counts.Unknown);
        var unknown = await RecipientsAsync(client, job.Id, RecipientStatuses.Unknown);
        Assert.All(unknown, r => Assert.True(r.Id > 0));

        // Bad input is a 400 with the field named.
        using (var both = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest([unknown[0].Id], true, "sent", null), StackFixture.Json))
        {
            await AssertProblemAsync(both, HttpStatusCode.BadRequest);
            Assert.Contains("recipient_ids", await both.Content.ReadAsStringAsync());
        }
        using (var badResolution = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest([unknown[0].Id], null, "delivered", null), StackFixture.Json))
        {
            await AssertProblemAsync(badResolution, HttpStatusCode.BadRequest);
        }

        using (var one = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest([unknown[0].Id], null, "sent", "the relay's log shows it queued"), StackFixture.Json))
        {
            var answer = await StackFixture.ReadAsync<ResolveRecipientsResponse>(one, HttpStatusCode.OK);
            Assert.Equal(1, answer.Resolved);
            Assert.Equal((1, 2), (answer.Job.Counts.Sent, answer.Job.Counts.Unknown));
        }
        var row = (await RecipientsAsync(client, job.Id)).Single(r => r.Id == unknown[0].Id);
        Assert.Equal(RecipientStatuses.Sent, row.Status);
        Assert.StartsWith("client:", row.ResolvedBy);
        Assert.NotNull(row.ResolvedAt);
        Assert.NotNull(row.SentAt);
        Assert.Equal("the relay's log shows it queued", row.ResolutionNote);

        // Not unknown any more (and a row of no job): 409, nothing changed.
        using (var again = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest([unknown[0].Id, unknown[1].Id], null, "failed", null), StackFixture.Json))
        {
            await AssertProblemAsync(again, HttpStatusCode.Conflict);
        }
        Assert.Equal(2, (await RecipientsAsync(client, job.Id, RecipientStatuses.Unknown)).Count);

        using (var all = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest(null, true, "failed", null), StackFixture.Json))
        {
            var answer = await StackFixture.ReadAsync<ResolveRecipientsResponse>(all, HttpStatusCode.OK);
            Assert.Equal(2, answer.Resolved);
            Assert.Equal((1, 2, 0), (answer.Job.Counts.Sent, answer.Job.Counts.Failed, answer.Job.Counts.Unknown));
        }
        using (var none = await client.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest(null, true, "failed", null), StackFixture.Json))
        {
            await AssertProblemAsync(none, HttpStatusCode.Conflict);
        }
        // Still one copy of each at the relay: resolving sends nothing.
        Assert.Equal(3, relay.Accepted.Count);
    }

    [Fact]
    public async Task Another_tenants_job_is_404_for_every_operation_and_a_read_only_token_is_403()
    {
        var (owner, _) = await stack.CreateTenantWithSubscribersAsync(1, "own");
        var stranger = await stack.CreateTenantAsync();
        using var ownerClient = stack.SendEngineClient(await stack.SendTokenAsync(owner));
        var job = await CreateJobAsync(ownerClient, owner, "Mine", DateTimeOffset.UtcNow.AddHours(1).ToString("O", CultureInfo.InvariantCulture));
        using var strangerClient = stack.SendEngineClient(await stack.SendTokenAsync(stranger));
        foreach (var path in new[] { "pause", "trigger", "retry-failed", "resume", "cancel" })
        {
            using var response = await strangerClient.PostAsync($"api/send-jobs/{job.Id}/{path}", null);
            await AssertProblemAsync(response, HttpStatusCode.NotFound);
        }
        using (var resolve = await strangerClient.PostAsJsonAsync($"api/send-jobs/{job.Id}/recipients/resolve",
            new ResolveRecipientsRequest(null, true, "sent", null), StackFixture.Json))
        {
            await AssertProblemAsync(resolve, HttpStatusCode.NotFound);
        }
        foreach (var path in new[] { "stats", "progress" })
        {
            using var response = await strangerClient.GetAsync($"api/send-jobs/{job.Id}/{path}");
            await AssertProblemAsync(response, HttpStatusCode.NotFound);
        }
        // A scheduled job cannot retry (409), and a read-only token cannot operate at all (403).
        using (var retry = await ownerClient.PostAsync($"api/send-jobs/{job.Id}/retry-failed", null))
        {
            await AssertProblemAsync(retry, HttpStatusCode.Conflict);
        }
        using var reader = stack.SendEngineClient(await stack.SendTokenAsync(owner, Scopes.SendRead));
        using var forbidden = await reader.PostAsync($"api/send-jobs/{job.Id}/pause", null);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        var still = await ownerClient.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal(SendJobStatuses.Scheduled, still!.Status);
    }
}
