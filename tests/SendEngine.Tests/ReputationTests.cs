using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Webhooks;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Features.Reputation;
using static SendEngine.Tests.TestDatabase;

namespace SendEngine.Tests;

/// <summary>
/// The reputation guard and sending limits end to end (docs/deliverability.md): bounce events through the public
/// event webhook warn and then pause a tenant (its running job paused with the reason, new jobs refused, transactional
/// mail still sent), an operator's resume with a note lets the job finish and is in the operation log; a job whose
/// first recipients are refused by a real relay (aiosmtpd, 550 5.1.1) is paused as a likely purchased list; and two
/// Send Engines on one database never claim more than the hourly limit and finish the job in later windows.
/// </summary>
[LongRunning(80)]
public sealed class ReputationTests(StackFixture stack)
{
    private Dictionary<string, string?> Settings(Dictionary<string, string?>? extra = null)
    {
        var s = new Dictionary<string, string?>
        {
            ["Reputation:EvaluationInterval"] = "00:00:00.300",
            ["Reputation:MinimumVolume"] = "10",
            ["EmailEvents:PollInterval"] = "00:00:00.100",
            ["EmailEvents:UnknownMessageGrace"] = "00:00:00",
            ["Webhooks:AllowPrivateNetworks"] = "true",
            ["Webhooks:PollInterval"] = "00:00:00.100",
            ["Webhooks:SubscriptionCacheTtl"] = "00:00:00",
        };
        foreach (var (k, v) in extra ?? [])
        {
            s[k] = v;
        }
        return s;
    }

    private async Task<HttpClient> AdminAsync(SendEngineFactory engine)
    {
        var admin = engine.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        return admin;
    }

    private async Task<HttpClient> TenantAsync(SendEngineFactory engine, TestTenant tenant)
    {
        var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        return client;
    }

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient client, TestTenant tenant, string subject)
    {
        using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "Hi {{ email }}", null), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    private static async Task<JsonElement> ReputationAsync(HttpClient client, string path = "api/reputation")
    {
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path} answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task<JsonElement> WaitForStateAsync(HttpClient client, string state)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var r = await ReputationAsync(client);
            if (r.GetProperty("state").GetString() == state)
            {
                return r;
            }
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"state never became {state}: {r}");
            await Task.Delay(100);
        }
    }

    /// <summary>A hard bounce of a sent message through the public event webhook (Tencent's format, unauthenticated in tests).</summary>
    private static async Task HardBounceAsync(HttpClient hook, SendJobRecipientResponse row)
    {
        var body = JsonSerializer.Serialize(new
        {
            eventType = "bounce", messageId = row.MessageId, email = row.Email, bounceType = "Permanent", bounceSubType = "General",
            timestamp = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        });
        using var response = await hook.PostAsync("api/tencent/ses/webhook", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, $"webhook answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<List<SendJobRecipientResponse>> RecipientsAsync(HttpClient client, string jobId) =>
        [.. (await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=500", StackFixture.Json))!.Items];

    [Fact]
    public async Task Bounces_warn_then_pause_the_tenant_and_an_operator_resume_with_a_note_lets_its_job_finish()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(30, "rep");
        await using var receiver = new WebhookReceiver();
        var db = await stack.CreateSendEngineDatabaseAsync();
        // 5 messages a second: the second job is still running when the bounces arrive.
        await using var engine = stack.CreateSendEngine(db, Settings(new() { ["Delivery:MessagesPerSecond"] = "5", ["Delivery:Concurrency"] = "2" }));
        using var se = await TenantAsync(engine, tenant);
        using var admin = await AdminAsync(engine);
        using var hook = engine.CreateClient();
        await StackFixture.PostAsync<WebhookEndpointSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/webhook-endpoints",
            new CreateWebhookEndpointRequest(receiver.Url, [WebhookEventTypes.ReputationWarning, WebhookEventTypes.ReputationPaused], "guard"));

        var first = await CreateJobAsync(se, tenant, "First");
        await StackFixture.WaitForJobAsync(se, first.Id, j => j.Status == SendJobStatuses.Completed);
        var rows = await RecipientsAsync(se, first.Id);
        Assert.Equal(30, rows.Count(r => r.Status == RecipientStatuses.Sent));
        var ok = await ReputationAsync(se);
        Assert.Equal(("ok", 30), (ok.GetProperty("state").GetString(), ok.GetProperty("window24h").GetProperty("delivered").GetInt32()));

        // 1 of 30 (3.3 %): over the 2 % warning line, under the 5 % pause line.
        await HardBounceAsync(hook, rows[0]);
        var warned = await WaitForStateAsync(se, "warning");
        Assert.Contains("hard bounce rate 3.333 %", warned.GetProperty("reason").GetString());
        Assert.False(warned.GetProperty("bulk_paused").GetBoolean());
        var warning = await receiver.WaitForAsync(r => r.Count >= 1, what: "the reputation.warning event");
        var warningBody = JsonDocument.Parse(warning[0].Body).RootElement;
        Assert.Equal("reputation.warning", warningBody.GetProperty("type").GetString());
        Assert.Equal(tenant.TenantId, warningBody.GetProperty("data").GetProperty("tenant_id").GetString());
        Assert.Equal(1, warningBody.GetProperty("data").GetProperty("window24h").GetProperty("hard_bounces").GetInt32());

        // Two more while the second job runs: 3 of at most 60 is at least 5 %.
        var second = await CreateJobAsync(se, tenant, "Second");
        await StackFixture.WaitForJobAsync(se, second.Id, j => j.Counts.Sent >= 2);
        await HardBounceAsync(hook, rows[1]);
        await HardBounceAsync(hook, rows[2]);
        var paused = await StackFixture.WaitForJobAsync(se, second.Id, j => j.Status == SendJobStatuses.Paused);
        Assert.StartsWith("paused by the reputation guard: hard bounce rate", paused.PausedReason);
        Assert.True(paused.Counts.Remaining > 0, "the second job finished before the pause");
        var state = await ReputationAsync(se);
        Assert.Equal(("paused", true, false), (state.GetProperty("state").GetString(), state.GetProperty("bulk_paused").GetBoolean(),
            state.GetProperty("transactional_paused").GetBoolean()));
        var pausedEvent = await receiver.WaitForAsync(r => r.Any(h => h.Body.Contains("reputation.paused")), what: "the reputation.paused event");
        var pausedData = JsonDocument.Parse(pausedEvent.First(h => h.Body.Contains("reputation.paused")).Body).RootElement.GetProperty("data");
        Assert.Equal("bulk", pausedData.GetProperty("scope").GetString());
        Assert.Equal([second.Id], pausedData.GetProperty("paused_jobs").EnumerateArray().Select(e => e.GetString()));

        // Counted for monitoring, under the names the alert rules watch.
        var metrics = await StackFixture.WaitForMetricsAsync(hook, "(?m)^sendengine_reputation_pauses_total\\{[^}]*kind=\"bounce\"[^}]*\\} 1\\b");
        // At least one warning: on a slow machine the second job's sends can bring the rate back under the warning line
        // before the next bounces are processed, and the tenant is warned again on its way to the pause.
        Assert.Matches("(?m)^sendengine_reputation_warnings_total\\{[^}]*kind=\"bounce\"[^}]*\\} [1-9][0-9]*\\b", metrics);
        var rules = await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "deploy", "prometheus", "sendengine-alerts.yml"));
        Assert.Contains("sendengine_reputation_pauses_total{kind=\"bounce\"}", rules, StringComparison.Ordinal);

        // New jobs are refused, and the tenant cannot resume the guard's pause itself.
        using (var refused = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Third", null, "Hi", null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("tenant_paused", await refused.Content.ReadAsStringAsync());
        }
        using (var ownResume = await se.PostAsync($"api/send-jobs/{second.Id}/resume", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, ownResume.StatusCode);
        }

        // Transactional mail keeps flowing.
        var domain = StackFixture.UniqueDomain();
        using (var registered = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json))
        {
            Assert.True(registered.IsSuccessStatusCode);
        }
        using var transactional = engine.CreateClient();
        transactional.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var subject = "receipt " + Guid.NewGuid().ToString("N")[..8];
        using (var sent = await transactional.PostAsJsonAsync("api/v1/email",
            new { message = new { text = "Thanks", subject, from_email = $"shop@{domain}", to = new[] { new { email = $"buyer@{domain}" } } } }))
        {
            Assert.True(sent.StatusCode == HttpStatusCode.OK, await sent.Content.ReadAsStringAsync());
        }
        await WaitUntilAsync(async () => (await stack.Mail.ListAsync()).Any(m => m.Subject == subject));

        // The resume needs a note; with one, the job goes on and the old window does not pause the tenant again.
        using (var noNote = await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = " " }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noNote.StatusCode);
            Assert.Contains("\"note\"", await noNote.Content.ReadAsStringAsync());
        }
        using (var resumed = await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "list cleaned, ticket 4711" }))
        {
            Assert.True(resumed.StatusCode == HttpStatusCode.OK, await resumed.Content.ReadAsStringAsync());
        }
        var done = await StackFixture.WaitForJobAsync(se, second.Id, j => j.Status == SendJobStatuses.Completed);
        // The bounced addresses are suppressed now (and reported to Member Center, so the second job's snapshot may
        // not even hold the first): those the job had not reached yet are skipped.
        var others = (await RecipientsAsync(se, second.Id)).Where(r => r.Status is not (RecipientStatuses.Sent or RecipientStatuses.Suppressed))
            .Select(r => $"{r.Email} {r.Status} {r.Attempts} {r.Detail}").ToList();
        Assert.True(others.Count == 0, string.Join("\n", others));
        Assert.Equal(done.Counts.Total, done.Counts.Sent + done.Counts.Suppressed);
        Assert.InRange(done.Counts.Total - done.Counts.Sent, 0, 3);
        Assert.InRange(done.Counts.Total, 27, 30);
        Assert.Null(done.PausedReason);
        var after = await ReputationAsync(se);
        Assert.Equal("ok", after.GetProperty("state").GetString());
        Assert.Equal(0, after.GetProperty("window24h").GetProperty("hard_bounces").GetInt32());
        List<object[]> log = [];
        await WaitUntilAsync(async () => (log = await QueryAsync(db, "SELECT row_to_json(o)::text FROM operation_log o WHERE path = $1 AND status_code = 200",
            $"/admin/tenants/{tenant.TenantId}/reputation/resume")).Count > 0);
        Assert.Contains("list cleaned, ticket 4711", (string)Assert.Single(log)[0]);
        using (var again = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Third", null, "Hi", null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        }

        // Another tenant sees only its own standing; the admin route knows no tenant Send Engine never saw.
        using (var unknown = await admin.GetAsync($"admin/tenants/{Guid.NewGuid()}/reputation"))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }
        var other = await stack.CreateTenantAsync();
        using var otherClient = await TenantAsync(engine, other);
        var otherState = await ReputationAsync(otherClient);
        Assert.Equal(("ok", 0), (otherState.GetProperty("state").GetString(), otherState.GetProperty("window24h").GetProperty("delivered").GetInt32()));
    }

    [Fact]
    public async Task A_job_whose_first_recipients_are_refused_as_unknown_mailboxes_is_paused_as_a_likely_purchased_list()
    {
        await using var relay = await SmtpSinkServer.StartRejectingUnknownUsersAsync();
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        // 12 of 40 unknown (30 %), spread over the list.
        var emails = Enumerable.Range(1, 40).Select(i => i % 10 < 3 ? $"unknown{i}@{domain}" : $"real{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(new()
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["Delivery:MessagesPerSecond"] = "4",
            ["Delivery:Concurrency"] = "2",
            ["Reputation:JobMinimumSample"] = "10",
            // The tenant-wide rates stay out of it (a 1,000-message minimum).
            ["Reputation:MinimumVolume"] = "1000",
        }));
        using var se = await TenantAsync(engine, tenant);
        using var admin = await AdminAsync(engine);

        var job = await CreateJobAsync(se, tenant, "Bought list");
        var paused = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Paused);
        Assert.Contains("hard-bounced", paused.PausedReason);
        Assert.Contains("the list looks bought or stale", paused.PausedReason);
        Assert.True(paused.Counts.Remaining > 0);
        Assert.True(paused.Counts.Failed * 10 > paused.Counts.Sent + paused.Counts.Failed, "the pause came without a 10 % share");
        // The tenant itself is not paused, but this job waits for an operator.
        Assert.Equal("ok", (await ReputationAsync(se)).GetProperty("state").GetString());
        using (var ownResume = await se.PostAsync($"api/send-jobs/{job.Id}/resume", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, ownResume.StatusCode);
        }
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(SendJobStatuses.Paused, (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json))!.Status);

        using (var resumed = await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "tenant confirmed opt-in source" }))
        {
            Assert.True(resumed.StatusCode == HttpStatusCode.OK, await resumed.Content.ReadAsStringAsync());
        }
        // Checked once: the operator's resume is not undone by the same share.
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal((28, 12), (done.Counts.Sent, done.Counts.Failed));
    }

    [Fact]
    public async Task Two_Send_Engines_on_one_database_never_claim_more_than_the_hourly_limit_and_finish_in_later_windows()
    {
        const int recipients = 25, limit = 10;
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(recipients, "limit");
        var db = await stack.CreateSendEngineDatabaseAsync();
        // A 4-second "hour"; several runners of the job, spread over both processes' Hangfire servers.
        var settings = Settings(new() { ["SendingLimits:Window"] = "00:00:04", ["SendJobs:Runners"] = "4", ["SendJobs:BatchSize"] = "3" });
        await using var one = stack.CreateSendEngine(db, settings);
        _ = one.Server;
        await using var two = stack.CreateSendEngine(db, settings);
        _ = two.Server;
        using var admin = await AdminAsync(one);
        using (var set = await admin.PutAsJsonAsync($"admin/tenants/{tenant.TenantId}/sending-limits", new { messages_per_hour = limit, messages_per_day = (int?)null }))
        {
            var body = await set.Content.ReadAsStringAsync();
            Assert.True(set.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal(limit, JsonDocument.Parse(body).RootElement.GetProperty("limits").GetProperty("messages_per_hour").GetInt32());
        }
        using var se = await TenantAsync(two, tenant);

        var job = await CreateJobAsync(se, tenant, "Limited");
        var throttled = await StackFixture.WaitForJobAsync(se, job.Id, j => j.ThrottledUntil is not null || j.Status == SendJobStatuses.Completed);
        Assert.Equal(SendJobStatuses.Sending, throttled.Status);
        Assert.NotNull(throttled.ThrottledUntil);
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(60));
        Assert.Equal(recipients, done.Counts.Sent);
        Assert.Null(done.ThrottledUntil);

        var windows = (await QueryAsync(db, "SELECT window_start, messages FROM send_counters WHERE tenant_id = $1 ORDER BY window_start", Guid.Parse(tenant.TenantId)))
            .Select(r => (Start: (DateTime)r[0], Messages: (long)r[1])).ToList();
        Assert.True(windows.Count >= 3, $"{recipients} at {limit} an hour need three windows: {string.Join(", ", windows)}");
        Assert.All(windows, w => Assert.InRange(w.Messages, 0, limit));
        var rows = await RecipientsAsync(se, job.Id);
        Assert.Equal(emails.Order(), rows.Select(r => r.Email).Order());
        // The windows count every attempt (each 'sending' mark) once, and nothing else: no reservation of a row read
        // by both processes, skipped or handed back is left behind. (A relay's transient refusal on a loaded machine
        // is a second attempt, and counted as one.)
        var retried = string.Join("; ", rows.Where(r => r.Attempts != 1).Select(r => $"{r.Email}: {r.Attempts} attempts, {r.Detail}"));
        Assert.True(rows.Sum(r => r.Attempts) == windows.Sum(w => w.Messages),
            $"windows [{string.Join(", ", windows)}] count {windows.Sum(w => w.Messages)}, attempts {rows.Sum(r => r.Attempts)} (not once: {retried})");
    }

    [Fact]
    public async Task An_evaluation_that_read_the_rates_before_an_operators_resume_does_not_pause_the_tenant_again()
    {
        // The guard reads every tenant's rates, then changes each state under the tenant row's lock. Here a resume
        // (which holds the same lock and moves the baseline past the window's bounces) lands in between: the
        // evaluation has to judge the window the resume left, not the one it read.
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(new() { ["Reputation:GuardEnabled"] = "false" }));
        var store = engine.Services.GetRequiredService<ReputationStore>();
        var tenantId = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        var hour = new DateTimeOffset(now.UtcTicks - now.UtcTicks % TimeSpan.TicksPerHour, TimeSpan.Zero);
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        async Task ExecAsync(string sql, NpgsqlTransaction? tx, params object[] args)
        {
            await using var cmd = new NpgsqlCommand(sql, conn, tx);
            foreach (var arg in args)
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = arg });
            }
            await cmd.ExecuteNonQueryAsync();
        }
        await ExecAsync(ReputationStore.EnsureRowSql, null, tenantId, now);
        await ExecAsync("INSERT INTO reputation_counts (tenant_id, hour, source_id, sent, hard_bounces, complaints) VALUES ($1, $2, $1, 30, 3, 0)", null, tenantId, hour);

        await using var resume = await conn.BeginTransactionAsync();
        await ExecAsync("SELECT 1 FROM tenant_reputation WHERE tenant_id = $1 FOR UPDATE", resume, tenantId);
        var evaluation = store.EvaluateAsync(CancellationToken.None);
        await WaitUntilAsync(async () => evaluation.IsCompleted || await TestSql.ScalarAsync<long>(db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0);
        Assert.False(evaluation.IsCompleted, "the evaluation did not wait for the tenant's row");
        await ExecAsync("UPDATE tenant_reputation SET baseline_hour = $2, baseline_sent = 30, baseline_hard_bounces = 3, note = 'resumed' WHERE tenant_id = $1",
            resume, tenantId, hour);
        await resume.CommitAsync();
        await evaluation;

        var report = await store.ReportAsync(tenantId, CancellationToken.None);
        Assert.Equal((ReputationStates.Ok, false, 0L), (report.State, report.BulkPaused, report.Window24h.HardBounces));
    }

    [Fact]
    public async Task An_operators_pause_of_all_mail_refuses_transactional_sends_until_the_resume_and_bad_input_is_a_400()
    {
        var tenant = await stack.CreateTenantAsync();
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings());
        using var se = await TenantAsync(engine, tenant);
        using var admin = await AdminAsync(engine);
        var domain = StackFixture.UniqueDomain();
        using (var registered = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json))
        {
            Assert.True(registered.IsSuccessStatusCode);
        }
        using var transactional = engine.CreateClient();
        transactional.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        object Mail() => new { message = new { text = "Hi", subject = "order", from_email = $"shop@{domain}", to = new[] { new { email = $"buyer@{domain}" } } } };
        var pausePath = $"admin/tenants/{tenant.TenantId}/reputation/pause";

        async Task AssertStatusAsync(HttpResponseMessage response, HttpStatusCode status, string contains)
        {
            using (response)
            {
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
                Assert.Contains(contains, body, StringComparison.Ordinal);
            }
        }
        await AssertStatusAsync(await admin.PostAsJsonAsync(pausePath, new { scope = "everything" }), HttpStatusCode.BadRequest, "\"scope\"");
        await AssertStatusAsync(await admin.PutAsJsonAsync($"admin/tenants/{tenant.TenantId}/sending-limits", new { messages_per_hour = 0 }),
            HttpStatusCode.BadRequest, "\"messages_per_hour\"");
        await AssertStatusAsync(await admin.PutAsJsonAsync($"admin/tenants/{tenant.TenantId}/sending-limits", new { use_platform_defaults = true, messages_per_day = 5 }),
            HttpStatusCode.BadRequest, "\"use_platform_defaults\"");
        await AssertStatusAsync(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "nothing to resume" }),
            HttpStatusCode.Conflict, "not paused");

        await AssertStatusAsync(await admin.PostAsJsonAsync(pausePath, new { scope = "all", note = "abuse report 17" }), HttpStatusCode.OK, "\"transactional_paused\":true");
        await AssertStatusAsync(await transactional.PostAsJsonAsync("api/v1/email", Mail()), HttpStatusCode.Conflict, "SENDING_PAUSED");
        await AssertStatusAsync(await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Held", null, "Hi", null), StackFixture.Json),
            HttpStatusCode.Conflict, "tenant_paused");
        var paused = await ReputationAsync(admin, $"admin/tenants/{tenant.TenantId}/reputation");
        Assert.Equal(("paused", "abuse report 17"), (paused.GetProperty("state").GetString(), paused.GetProperty("note").GetString()));

        await AssertStatusAsync(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "answered the report" }),
            HttpStatusCode.OK, "\"transactional_paused\":false");
        await AssertStatusAsync(await transactional.PostAsJsonAsync("api/v1/email", Mail()), HttpStatusCode.OK, "task_id");
    }

    [Fact]
    public async Task A_newly_verified_sender_domain_warms_up_on_its_own_although_its_tenant_is_past_its_warm_up()
    {
        const int recipients = 5;
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(recipients, "warm");
        var db = await stack.CreateSendEngineDatabaseAsync();
        // A 1-second "hour", so a "day" is 24 s: the domain may send 3 on its first day, 6 on its second.
        await using var engine = stack.CreateSendEngine(db, Settings(new()
        {
            ["SendingLimits:Window"] = "00:00:01",
            ["SendingLimits:WarmupFirstDay"] = "3",
            ["SendJobs:BatchSize"] = "2",
            ["SenderDomains:CacheDuration"] = "00:00:00",
        }));
        using var se = await TenantAsync(engine, tenant);
        var domain = StackFixture.UniqueDomain();
        await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));
        // Verified now, as POST …/verify leaves it once DNS has the records (SenderDomainDkimTests covers that part).
        await QueryAsync(db, "UPDATE sender_domains SET status = 'verified', verified_at = now() WHERE domain = $1 RETURNING 1", domain);
        // The tenant itself first sent an hour ago, 150 "days": its own warm-up is long over.
        await QueryAsync(db, """
            INSERT INTO tenant_reputation (tenant_id, state, bulk_paused, transactional_paused, changed_at, baseline_sent, baseline_hard_bounces,
                baseline_complaints, limits_set, first_send_at)
            VALUES ($1, 'ok', false, false, now(), 0, 0, 0, false, now() - interval '1 hour') RETURNING 1
            """, Guid.Parse(tenant.TenantId));

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Warm", null, "Hi", null,
            FromEmail: "news@" + domain), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        var throttled = await StackFixture.WaitForJobAsync(se, job.Id, j => j.ThrottledUntil is not null || j.Status == SendJobStatuses.Completed);
        Assert.True(throttled.ThrottledUntil is not null, "the domain's first day must hold the job back");
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(90));
        Assert.Equal(recipients, done.Counts.Sent);

        // The domain's share per "day" (24 windows of 1 s): 3 at most on the first, the rest on a later one.
        var days = (await QueryAsync(db, """
            SELECT floor(extract(epoch FROM window_start) / 24)::bigint AS day, sum(messages)::bigint FROM send_counters
            WHERE tenant_id = $1 AND domain = $2 GROUP BY 1 HAVING sum(messages) > 0 ORDER BY 1
            """, Guid.Parse(tenant.TenantId), domain)).Select(r => (long)r[1]).ToList();
        Assert.True(days.Count >= 2 && days[0] <= 3, string.Join(", ", days));
        Assert.Equal(recipients, days.Sum());
        // The tenant's own total counts every message too.
        Assert.Equal((long)recipients, (long)(await QueryAsync(db, "SELECT COALESCE(sum(messages), 0)::bigint FROM send_counters WHERE tenant_id = $1 AND domain = ''",
            Guid.Parse(tenant.TenantId)))[0][0]);
    }

    [Fact]
    public async Task The_reputation_api_shows_each_verified_sender_domains_warm_up_cap_and_use_today()
    {
        var tenant = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(new() { ["SendingLimits:WarmupFirstDay"] = "100" }));
        using var se = await TenantAsync(engine, tenant);
        var (fresh, second, old, unverified) = (StackFixture.UniqueDomain(), StackFixture.UniqueDomain(), StackFixture.UniqueDomain(), StackFixture.UniqueDomain());
        foreach (var d in new[] { fresh, second, old, unverified })
        {
            await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(d));
        }
        // Verified now (day 0: 100), a day and a minute ago (day 1: 200) and 30 days ago (past the 14 days of warm-up).
        foreach (var (d, ago) in new[] { (fresh, "0 seconds"), (second, "1 day 1 minute"), (old, "30 days") })
        {
            await QueryAsync(db, "UPDATE sender_domains SET status = 'verified', verified_at = now() - $2::interval WHERE domain = $1 RETURNING 1", d, ago);
        }
        // The runner's count of the fresh domain's share: 40 this hour, 7 two days ago (not today's).
        var tenantId = Guid.Parse(tenant.TenantId);
        await QueryAsync(db, """
            INSERT INTO send_counters (tenant_id, domain, window_start, messages)
            VALUES ($1, $2, date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 40),
                ($1, $2, (date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') - interval '2 days', 7) RETURNING 1
            """, tenantId, fresh);

        var domains = (await ReputationAsync(se)).GetProperty("limits").GetProperty("sender_domains").EnumerateArray()
            .ToDictionary(d => d.GetProperty("domain").GetString()!);
        Assert.Equal(new[] { fresh, second, old }.Order(StringComparer.Ordinal), domains.Keys.Order(StringComparer.Ordinal));
        var first = domains[fresh];
        Assert.True(first.GetProperty("warming_up").GetBoolean());
        Assert.Equal(100, first.GetProperty("daily_limit").GetInt64());
        Assert.Equal(40, first.GetProperty("sent_today").GetInt64());
        Assert.True(DateTimeOffset.UtcNow - first.GetProperty("verified_at").GetDateTimeOffset() < TimeSpan.FromMinutes(5));
        Assert.Equal(200, domains[second].GetProperty("daily_limit").GetInt64());
        Assert.Equal(0, domains[second].GetProperty("sent_today").GetInt64());
        Assert.False(domains[old].GetProperty("warming_up").GetBoolean());
        Assert.Equal(JsonValueKind.Null, domains[old].GetProperty("daily_limit").ValueKind);
        Assert.Equal(JsonValueKind.Null, domains[old].GetProperty("sent_today").ValueKind);

        // Another tenant sees none of them.
        using var stranger = await TenantAsync(engine, other);
        Assert.Equal(0, (await ReputationAsync(stranger)).GetProperty("limits").GetProperty("sender_domains").GetArrayLength());
    }

    [Fact]
    public async Task The_warm_up_doubles_a_new_tenants_daily_limit_until_it_reaches_the_limit()
    {
        var options = new SendEngine.Features.Reputation.SendingLimitOptions { WarmupFirstDay = 1000, MessagesPerDay = 10_000 };
        var limits = new SendEngine.Features.Reputation.SendingLimits(Microsoft.Extensions.Options.Options.Create(options));
        var first = new DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero);
        long? Daily(double days) => limits.Effective(false, null, options.MessagesPerDay, first, first.AddDays(days)).Daily;
        Assert.Equal(1000, limits.Effective(false, null, options.MessagesPerDay, null, first).Daily);
        Assert.Equal(new long?[] { 1000, 2000, 4000, 8000, 10_000, 10_000 }, new[] { 0.5, 1.5, 2.5, 3.5, 4.5, 30 }.Select(Daily).ToArray());
        // An operator's own limits replace the platform's; without a daily limit the warm-up ends after WarmupDays.
        Assert.Equal(500, limits.Effective(true, 50, 500, first, first.AddDays(2.5)).Daily);
        Assert.Null(limits.Effective(true, null, null, first, first.AddDays(20)).Daily);
    }


    private static Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(30), () => "timed out", TimeSpan.FromMilliseconds(100));
}
