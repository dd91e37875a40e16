using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Features.EmailEvents;
using SendEngine.Features.Retention;

namespace SendEngine.Tests;

/// <summary>Issue 11, part 6: what is exposed to whom, and input edges (NUL in paths, concurrent upserts, indexed reads).</summary>
[LongRunning(64)]
public sealed partial class ExposureTests(StackFixture stack)
{
    private static readonly AuthenticationHeaderValue HangfireOperator = new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:ops-secret-123")));

    [Fact]
    public async Task A_NUL_in_any_path_segment_is_a_400()
    {
        // Through Kestrel, as deployed (the in-memory test server cannot even build such a request).
        var tenant = await stack.CreateTenantAsync();
        await using var engine = await SendEngineProcess.StartAsync(stack.SendEngineSettings(await stack.CreateSendEngineDatabaseAsync(),
            new Dictionary<string, string?> { ["Hangfire:WorkerCount"] = "1" }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        string[] paths = ["api/suppressions/a%00b@example.com", "api/email-addresses/a%00b@example.com/statistics",
            "api/email-addresses/x@example.com%00/events", "api/send-jobs/%00", "api/tencent/ses/webhook%00", "nothing%00here"];
        foreach (var path in paths)
        {
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Delete, HttpMethod.Post })
            {
                using var response = await se.SendAsync(new HttpRequestMessage(method, path));
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {path}: {(int)response.StatusCode} {body}");
            }
        }
        // The query too, where the application itself refuses it (with a problem body).
        using var query = await se.GetAsync("api/suppressions?after=a%00b");
        Assert.Equal(HttpStatusCode.BadRequest, query.StatusCode);
        Assert.Equal("application/problem+json", query.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Concurrent_adds_of_one_suppression_all_succeed_and_one_creates_it()
    {
        var tenant = await stack.CreateTenantAsync();
        var token = await stack.SendTokenAsync(tenant);
        var email = $"race-{Guid.NewGuid():N}@example.com";
        for (var round = 0; round < 5; round++)
        {
            var address = round + email;
            using var start = new ManualResetEventSlim();
            var posts = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                using var se = stack.SendEngineClient(token);
                start.Wait();
                using var response = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, address, null), StackFixture.Json);
                return (response.StatusCode, await response.Content.ReadAsStringAsync());
            })).ToList();
            start.Set();
            var answers = await Task.WhenAll(posts);
            Assert.All(answers, a => Assert.True(a.StatusCode is HttpStatusCode.OK or HttpStatusCode.Created, $"{(int)a.StatusCode}: {a.Item2}"));
            Assert.Single(answers, a => a.StatusCode == HttpStatusCode.Created);
        }
    }

    [Fact]
    public async Task Address_statistics_read_the_address_through_its_index_not_the_tenants_recipients()
    {
        var tenant = await stack.CreateTenantAsync();
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, new Dictionary<string, string?> { ["Hangfire:WorkerCount"] = "1" });
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var job = await CreateScheduledJobAsync(se, tenant);
        // 30,000 recipient rows of this tenant, three of them for the address asked about.
        await ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, status, attempts, preferences, updated_at)
            SELECT $1, gen_random_uuid(), 'reader' || i || '@example.com', 'sent', 1, '{}', now() FROM generate_series(1, 30000) i
            """, job);
        await ExecuteAsync(db, """
            INSERT INTO send_job_recipients (job_id, subscriber_id, email, status, attempts, preferences, updated_at)
            SELECT $1, gen_random_uuid(), 'Wanted@Example.com', s, 1, '{}', now() FROM unnest(ARRAY['sent', 'delivered', 'failed', 'bounced']) s
            """, job);
        await ExecuteAsync(db, "ANALYZE send_job_recipients");
        await ExecuteAsync(db, "ANALYZE send_jobs");

        var plan = string.Join('\n', (await QueryAsync(db, "EXPLAIN " + EmailEventsApi.SentToAddressSql, Guid.Parse(tenant.TenantId), "wanted@example.com")).Select(r => (string)r[0]!));
        Assert.Contains("ix_send_job_recipients_lower_email", plan);
        Assert.DoesNotContain("Seq Scan on send_job_recipients", plan);

        var stats = await se.GetFromJsonAsync<EmailStatisticsResponse>("api/email-addresses/wanted@example.com/statistics", StackFixture.Json);
        Assert.Equal(3, stats!.TotalSent);
    }

    [Fact]
    public async Task Metrics_and_Swagger_on_the_public_listener_need_the_management_credential_and_the_webhook_stays_open()
    {
        using var se = stack.SendEngineClient();
        foreach (var path in new[] { "metrics", "swagger/v1/swagger.json", "swagger/index.html" })
        {
            using var anonymous = await se.GetAsync(path);
            Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {(int)anonymous.StatusCode}");
            Assert.Contains(anonymous.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
            using var wrong = new HttpRequestMessage(HttpMethod.Get, path);
            wrong.Headers.Authorization = new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{StackFixture.ManagementUsername}:nope")));
            Assert.Equal(HttpStatusCode.Unauthorized, (await se.SendAsync(wrong)).StatusCode);
            using var right = new HttpRequestMessage(HttpMethod.Get, path);
            right.Headers.Authorization = StackFixture.ManagementAuthorization;
            Assert.Equal(HttpStatusCode.OK, (await se.SendAsync(right)).StatusCode);
        }
        // The webhook answers ESPs without any management credential (it has its own verification).
        using var hook = await se.PostAsync("api/tencent/ses/webhook", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.NotEqual(HttpStatusCode.NotFound, hook.StatusCode);
        Assert.DoesNotContain(hook.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
    }

    [Fact]
    public async Task With_a_management_port_metrics_Swagger_and_Hangfire_answer_only_there()
    {
        var managementPort = FreePort.Get();
        var settings = stack.SendEngineSettings(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Management:Urls"] = $"http://127.0.0.1:{managementPort}",
            ["Management:Username"] = null,
            ["Management:Password"] = null,
            ["Hangfire:WorkerCount"] = "1",
        });
        await using var engine = await SendEngineProcess.StartAsync(settings);
        using var publicListener = engine.CreateClient();
        publicListener.DefaultRequestHeaders.Authorization = HangfireOperator;
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}/") };
        management.DefaultRequestHeaders.Authorization = HangfireOperator;

        foreach (var path in new[] { "metrics", "swagger/v1/swagger.json", "hangfire" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await publicListener.GetAsync(path)).StatusCode);
            using var there = await management.GetAsync(path);
            Assert.True(there.StatusCode == HttpStatusCode.OK, $"{path} on the management port: {(int)there.StatusCode}");
        }
        // The API stays on the public listener; health answers on both (probes).
        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("api/send-jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await publicListener.GetAsync("api/send-jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await publicListener.GetAsync("health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("health/live")).StatusCode);
    }

    [Fact]
    public async Task A_cross_site_POST_to_a_Hangfire_dashboard_action_is_refused_even_with_the_operators_credential()
    {
        // A recurring job of its own that never fires by itself (the watchdog's runs every minute and could land
        // between the two reads): only a trigger changes its last job.
        const string probe = "exposure-csrf-probe";
        var recurring = stack.SendEngine.Services.GetRequiredService<IRecurringJobManager>();
        recurring.AddOrUpdate<Delivery.SendJobWatchdog>(probe, Extensions.HangfireExtensions.MaintenanceQueue, w => w.RunAsync(CancellationToken.None), Cron.Never());
        var storage = stack.SendEngine.Services.GetRequiredService<JobStorage>();
        string? LastRun()
        {
            using var connection = storage.GetConnection();
            return Hangfire.Storage.StorageConnectionExtensions.GetRecurringJobs(connection).Single(j => j.Id == probe).LastJobId;
        }
        var before = LastRun();
        using var se = stack.SendEngineClient();
        se.DefaultRequestHeaders.Authorization = HangfireOperator; // a browser resends a basic credential by itself

        // What a form on another site makes the operator's browser send: the credential, no antiforgery token.
        using var forged = new HttpRequestMessage(HttpMethod.Post, "hangfire/recurring/trigger")
        {
            Content = new FormUrlEncodedContent([new("jobs[]", probe)]),
        };
        forged.Headers.Add("Origin", "https://evil.example");
        forged.Headers.Add("Sec-Fetch-Site", "cross-site");
        using var refused = await se.SendAsync(forged);
        Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"cross-site POST answered {(int)refused.StatusCode}");
        Assert.Equal(before, LastRun());

        // The dashboard's own page carries the token (and sets its cookie): the same action from there works.
        var page = await se.GetStringAsync("hangfire/recurring");
        var header = MetaContent().Match(page[page.IndexOf("csrf-header", StringComparison.Ordinal)..]).Groups[1].Value;
        var token = MetaContent().Match(page[page.IndexOf("csrf-token", StringComparison.Ordinal)..]).Groups[1].Value;
        using var genuine = new HttpRequestMessage(HttpMethod.Post, "hangfire/recurring/trigger")
        {
            Content = new FormUrlEncodedContent([new("jobs[]", probe)]),
        };
        genuine.Headers.Add(header, WebUtility.HtmlDecode(token));
        using var accepted = await se.SendAsync(genuine);
        Assert.True(accepted.IsSuccessStatusCode, $"the dashboard's own POST answered {(int)accepted.StatusCode}");
        Assert.NotEqual(before, LastRun());
        recurring.RemoveIfExists(probe);
    }

    [Fact]
    public async Task Retention_archives_old_finished_jobs_keeping_their_counts_and_thins_out_events_and_reports()
    {
        var tenant = await stack.CreateTenantAsync();
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, new Dictionary<string, string?> { ["Hangfire:WorkerCount"] = "1" });
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var old = await CreateScheduledJobAsync(se, tenant);
        var recent = await CreateScheduledJobAsync(se, tenant);
        var tenantId = Guid.Parse(tenant.TenantId);
        // Two finished jobs with the same recipients: one finished 91 days ago, one yesterday.
        foreach (var (job, finished) in new[] { (old, "91 days"), (recent, "1 day") })
        {
            await ExecuteAsync(db, """
                UPDATE send_jobs SET status = 'completed', snapshot_completed_at = now() - $2::interval,
                    started_at = now() - $2::interval, finished_at = now() - $2::interval WHERE id = $1
                """, job, finished);
            await ExecuteAsync(db, """
                INSERT INTO send_job_recipients (job_id, subscriber_id, email, status, attempts, preferences, updated_at, sent_at, message_id)
                SELECT $1, gen_random_uuid(), 'r' || i || '@example.com', s, 1, '{}', now(), now(), gen_random_uuid()::text
                FROM generate_series(1, 3) i, unnest(ARRAY['sent', 'delivered', 'failed', 'suppressed']) s
                """, job);
        }
        // Events: one received 31 days ago (raw fields go), one today (kept whole), one 366 days ago (deleted).
        foreach (var (key, received) in new[] { ("month", "31 days"), ("today", "0 days"), ("year", "366 days") })
        {
            await ExecuteAsync(db, """
                INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, email, occurred_at, payload,
                    received_at, attempts, processed_at, outcome, tenant_id, job_id, ip_address, user_agent)
                VALUES ($1, 'tencent', 'open', 'open', 'm-' || $1, 'r1@example.com', now() - $4::interval,
                    '{"event":"open","ip":"203.0.113.7"}', now() - $4::interval, 1, now() - $4::interval, 'applied',
                    $2, $3, '203.0.113.7', 'Mozilla/5.0')
                """, key, tenantId, key == "today" ? recent : old, received);
        }
        // Member Center reports: delivered 31 days ago (deleted), delivered yesterday and failed 31 days ago (kept).
        foreach (var (email, outcome, completed) in new[] { ("a@example.com", "sent", "31 days"), ("b@example.com", "sent", "1 day"), ("c@example.com", "failed", "31 days") })
        {
            await ExecuteAsync(db, """
                INSERT INTO member_center_reports (tenant_id, email, reason, occurred_at, created_at, attempts, next_attempt_at, completed_at, outcome)
                VALUES ($1, $2, 'unsubscribe', now() - interval '40 days', now() - interval '40 days', 1, now() - interval '40 days',
                        now() - $4::interval, $3)
                """, tenantId, email, outcome, completed);
        }
        // Transactional requests: completed 91 days ago (deleted with its tasks), completed yesterday and one still open
        // for 200 days (both kept). The old one sent r1 two messages (sent, delivered) and t one; its rejected task is no "sent".
        var requests = new Dictionary<string, Guid>();
        foreach (var (name, completed, tasks) in new[]
                 {
                     ("old", "91 days", new[] { ("r1@example.com", "sent"), ("r1@example.com", "delivered"), ("r1@example.com", "rejected"), ("t@example.com", "sent") }),
                     ("recent", "1 day", new[] { ("r1@example.com", "sent") }),
                     ("open", (string?)null, new[] { ("r1@example.com", "queued") }),
                 })
        {
            requests[name] = Guid.NewGuid();
            await ExecuteAsync(db, """
                INSERT INTO transactional_requests (id, tenant_id, idempotency_key, message, metadata, response, created_at, completed_at)
                VALUES ($1, $2, $3, '{}', '{}', '{}', now() - interval '200 days', now() - $4::interval)
                """, requests[name], tenantId, "key-" + name, (object?)completed ?? DBNull.Value);
            for (var i = 0; i < tasks.Length; i++)
            {
                await ExecuteAsync(db, """
                    INSERT INTO transactional_tasks (id, request_id, tenant_id, position, email, email_key, type, status, attempts, metadata, created_at)
                    VALUES (gen_random_uuid(), $1, $2, $3, $4, $4, 'to', $5, 1, '{}', now() - interval '200 days')
                    """, requests[name], tenantId, i, tasks[i].Item1, tasks[i].Item2);
            }
        }
        var oldBefore = await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{old}", StackFixture.Json);
        var statsBefore = await se.GetFromJsonAsync<EmailStatisticsResponse>("api/email-addresses/r1@example.com/statistics", StackFixture.Json);
        var transactionalStatsBefore = await se.GetFromJsonAsync<EmailStatisticsResponse>("api/email-addresses/t@example.com/statistics", StackFixture.Json);
        Assert.Equal(12, oldBefore!.Counts.Total);
        Assert.Equal(7, statsBefore!.TotalSent); // sent + delivered in both jobs, and three transactional messages
        Assert.Equal(1, transactionalStatsBefore!.TotalSent);

        var result = await engine.Services.GetRequiredService<RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken);

        Assert.Equal(new RetentionSweeper.Result(RawEvents: 2, Jobs: 1, Recipients: 12, Events: 1, Reports: 1,
            TransactionalRequests: 1, TransactionalTasks: 4), result);
        var keptRequests = (await QueryAsync(db, "SELECT id FROM transactional_requests")).Select(r => (Guid)r[0]!).Order();
        Assert.Equal(new[] { requests["recent"], requests["open"] }.Order(), keptRequests);
        Assert.Equal(0L, await ScalarAsync(db, "SELECT count(*) FROM transactional_tasks WHERE request_id = $1", requests["old"]));
        Assert.Equal(2L, await ScalarAsync(db, "SELECT count(*) FROM transactional_tasks"));
        Assert.Equal(transactionalStatsBefore, await se.GetFromJsonAsync<EmailStatisticsResponse>("api/email-addresses/t@example.com/statistics", StackFixture.Json));
        Assert.Equal(0L, await ScalarAsync(db, "SELECT count(*) FROM send_job_recipients WHERE job_id = $1", old));
        Assert.Equal(12L, await ScalarAsync(db, "SELECT count(*) FROM send_job_recipients WHERE job_id = $1", recent));
        // The archived job answers the same counts (and event counters) as before; the address the same "sent".
        var oldAfter = await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{old}", StackFixture.Json);
        Assert.Equal(oldBefore.Counts, oldAfter!.Counts);
        Assert.Equal(oldBefore.Events, oldAfter.Events);
        Assert.Equal(statsBefore, await se.GetFromJsonAsync<EmailStatisticsResponse>("api/email-addresses/r1@example.com/statistics", StackFixture.Json));
        // Raw fields cleared on the month-old event (and the year-old one, then deleted); today's is whole.
        var events = (await QueryAsync(db, "SELECT idempotency_key, payload::text, ip_address, user_agent FROM email_events ORDER BY idempotency_key"))
            .ToDictionary(r => (string)r[0]!, r => (Payload: (string)r[1]!, Ip: r[2] as string, Agent: r[3] as string));
        Assert.Equal(["month", "today"], events.Keys.Order());
        Assert.Equal(("{}", (string?)null, (string?)null), events["month"]);
        Assert.Equal("203.0.113.7", events["today"].Ip);
        Assert.Contains("203.0.113.7", events["today"].Payload);
        var reports = (await QueryAsync(db, "SELECT email FROM member_center_reports ORDER BY email")).Select(r => (string)r[0]!);
        Assert.Equal(["b@example.com", "c@example.com"], reports);

        // A second sweep finds nothing more to do.
        Assert.Equal(new RetentionSweeper.Result(0, 0, 0, 0, 0), await engine.Services.GetRequiredService<RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken));
    }

    private static async Task<Guid> CreateScheduledJobAsync(HttpClient se, TestTenant tenant)
    {
        var request = new CreateSendJobRequest(tenant.TenantId, tenant.ListId, "n", "Subject", "<p>hi</p>", "hi", DateTimeOffset.UtcNow.AddDays(30).ToString("O"));
        using var response = await se.PostAsJsonAsync("api/send-jobs", request, StackFixture.Json);
        return Guid.Parse((await StackFixture.ReadAsync<SendJobResponse>(response, HttpStatusCode.Created)).Id);
    }

    private static async Task ExecuteAsync(string connectionString, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task<long> ScalarAsync(string connectionString, string sql, params object[] args) =>
        (long)(await QueryAsync(connectionString, sql, args)).Single()[0]!;

    private static async Task<List<object?[]>> QueryAsync(string connectionString, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        var rows = new List<object?[]>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var row = new object?[reader.FieldCount];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }
            rows.Add(row);
        }
        return rows;
    }

    [GeneratedRegex("content=\"([^\"]*)\"")]
    private static partial Regex MetaContent();
}
