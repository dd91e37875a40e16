using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using SendEngine.Features.SendJobs;

namespace SendEngine.Tests;

/// <summary>
/// The Send Engine routes the console reads: live progress (SSE), per-job statistics, the compose preview and test
/// send, the viewer's limits (no bodies without newsletter:content.read), transactional tasks by token and the
/// operators' status. People's tokens are minted with Member Center's real signing key (TokenForge), with the
/// claims the console's tokens carry (role, email).
/// </summary>
public sealed class ConsoleApiTests(StackFixture stack)
{
    private async Task<string> PersonTokenAsync(TestTenant tenant, string role, string scope, string email)
    {
        var forge = new TokenForge(stack);
        var key = await forge.MemberCenterKeyAsync();
        return forge.Mint(key, tenant.TenantId, scope, tweak: d =>
        {
            d.Claims[ClaimNames.Role] = role;
            d.Claims[ClaimNames.Email] = email;
            d.Claims[ClaimNames.Subject] = "person-" + Guid.NewGuid().ToString("N");
            d.Claims[ClaimNames.ClientId] = "console";
        });
    }

    private const string ViewerScopes = Scopes.SendRead;
    private const string EditorScopes = Scopes.SendRead + " " + Scopes.SendWrite + " " + Scopes.ContentRead;

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient client, TestTenant tenant, string subject, string? html, string? text)
    {
        using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, html, text, null), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    /// <summary>Reads a progress stream to its end: the events and how many comment lines came.</summary>
    private static async Task<(List<SendJobProgressEvent> Events, int Comments)> ReadProgressAsync(HttpClient client, string jobId, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"api/send-jobs/{jobId}/progress");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream);
        var events = new List<SendJobProgressEvent>();
        var comments = 0;
        string? eventName = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                eventName = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                Assert.Equal("progress", eventName);
                events.Add(JsonSerializer.Deserialize<SendJobProgressEvent>(line["data: ".Length..], StackFixture.Json)!);
            }
            else if (line.StartsWith(':'))
            {
                comments++;
            }
        }
        return (events, comments);
    }

    [Fact]
    public async Task Progress_streams_counts_to_completion_with_one_shared_poller_for_many_watchers()
    {
        const int recipients = 16;
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(recipients, "progress");
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Delivery:Concurrency"] = "1",
            ["Delivery:GroupSize"] = "1",
            ["Delivery:MessagesPerSecond"] = "4",
            ["SendJobs:BatchSize"] = "2",
            ["SendJobs:ProgressHeartbeat"] = "00:00:01",
        });
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        var job = await CreateJobAsync(client, tenant, "Progress", null, "Hi {{ email }}");
        var hub = engine.Services.GetRequiredService<JobProgressHub>();

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(90));
        // 20 watchers of one job: one poller feeds them all.
        var watchers = Enumerable.Range(0, 20).Select(_ => ReadProgressAsync(client, job.Id, timeout.Token)).ToList();
        await Task.Delay(TimeSpan.FromSeconds(1.5), TestContext.Current.CancellationToken);
        Assert.Equal(1, hub.ActivePollers);
        var results = await Task.WhenAll(watchers);

        var (events, comments) = results[0];
        Assert.True(comments >= 2, $"expected heartbeat comments every second, saw {comments}");
        var last = events[^1];
        Assert.True(last.Final);
        Assert.Equal(SendJobStatuses.Completed, last.Status);
        Assert.Equal((recipients, recipients, 0, 0), (last.Counts.Sent, last.ByStatus[RecipientStatuses.Sent], last.Remaining, last.Errors));
        Assert.Single(events, e => e.Final);
        // The counts moved while the job ran (about 4 messages a second), never backwards, and a rate was reported.
        var sent = events.Select(e => e.Counts.Sent).ToList();
        Assert.True(sent.Distinct().Count() >= 3, "sent counts seen: " + string.Join(",", sent));
        Assert.Equal(sent.Order(), sent);
        Assert.Contains(events, e => e.SentPerSecond > 0 && e.Status == SendJobStatuses.Sending);
        Assert.All(results, r => Assert.True(r.Events[^1].Final));
        Assert.Equal(0, hub.ActivePollers);

        // A finished job answers one final event at once.
        var (after, _) = await ReadProgressAsync(client, job.Id, timeout.Token);
        Assert.True(Assert.Single(after).Final);
    }

    [Fact]
    public async Task Stats_bucket_sent_times_and_events_per_minute_and_hour()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(4, "stats");
        using var client = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var job = await CreateJobAsync(client, tenant, "Stats " + Guid.NewGuid().ToString("N")[..8], null, "Hi");
        await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);

        // Two recipients' sends moved to fixed minutes, and events of the job in two minutes (as the processor leaves them).
        var rows = await TestDatabase.QueryAsync(stack.SendEngineConnectionString,
            "SELECT id, email FROM send_job_recipients WHERE job_id = $1 ORDER BY id", Guid.Parse(job.Id));
        var t0 = new DateTimeOffset(2026, 11, 30, 10, 5, 20, TimeSpan.Zero);
        var ids = rows.Select(r => (long)r[0]).ToArray();
        await TestDatabase.QueryAsync(stack.SendEngineConnectionString,
            "UPDATE send_job_recipients SET sent_at = CASE WHEN id = ANY($2) THEN $3 ELSE $4 END WHERE job_id = $1 RETURNING id",
            Guid.Parse(job.Id), ids[..2], t0, t0.AddMinutes(1));
        async Task EventAsync(long recipientId, string email, string type, DateTimeOffset at, string? outcome = "applied") =>
            await TestDatabase.QueryAsync(stack.SendEngineConnectionString, """
                INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, email, occurred_at, payload, received_at,
                    tenant_id, job_id, recipient_id, processed_at, outcome, attempts)
                VALUES ($1, 'spec', $2, $2, 'm', $3, $4, '{}', $4, $5, $6, $7, $4, $8, 1) RETURNING id
                """, Guid.NewGuid().ToString("N"), type, email, at, Guid.Parse(tenant.TenantId), Guid.Parse(job.Id), recipientId, outcome!);
        await EventAsync(ids[0], (string)rows[0][1], "delivered", t0.AddSeconds(5));
        await EventAsync(ids[0], (string)rows[0][1], "open", t0.AddSeconds(30));
        await EventAsync(ids[0], (string)rows[0][1], "open", t0.AddSeconds(35));
        await EventAsync(ids[1], (string)rows[1][1], "hard_bounce", t0.AddMinutes(1));
        await EventAsync(ids[2], (string)rows[2][1], "click", t0.AddMinutes(1).AddSeconds(3));
        await EventAsync(ids[3], (string)rows[3][1], "spamreport", t0.AddMinutes(1).AddSeconds(9));
        await EventAsync(ids[3], (string)rows[3][1], "unsubscribe", t0.AddMinutes(1).AddSeconds(9));

        var minute = await client.GetFromJsonAsync<SendJobStatsResponse>($"api/send-jobs/{job.Id}/stats?bucket=minute", StackFixture.Json);
        Assert.Equal("minute", minute!.Bucket);
        Assert.Equal(
            [
                new SendJobStatsBucket(new DateTimeOffset(2026, 11, 30, 10, 5, 0, TimeSpan.Zero), 2, 1, 0, 0, 0, 2, 0, 0),
                new SendJobStatsBucket(new DateTimeOffset(2026, 11, 30, 10, 6, 0, TimeSpan.Zero), 2, 0, 1, 0, 1, 0, 1, 1),
            ],
            minute.Series);
        var hour = await client.GetFromJsonAsync<SendJobStatsResponse>($"api/send-jobs/{job.Id}/stats?bucket=hour", StackFixture.Json);
        Assert.Equal([new SendJobStatsBucket(new DateTimeOffset(2026, 11, 30, 10, 0, 0, TimeSpan.Zero), 4, 1, 1, 0, 1, 2, 1, 1)], hour!.Series);
        using var bad = await client.GetAsync($"api/send-jobs/{job.Id}/stats?bucket=day");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("bucket", await bad.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Preview_renders_exactly_what_the_job_sends_for_the_same_merge_values()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"ada@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email], _ => new Dictionary<string, JsonElement> { ["first_name"] = JsonSerializer.SerializeToElement("Ada & Co") });
        using var client = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var subject = "Hello {{ first_name }} " + Guid.NewGuid().ToString("N")[..8];
        const string html = "<p>Dear {{ first_name }} ({{ email }}), <b>welcome</b></p>";
        const string text = "Dear {{ first_name }} ({{ email }})";
        await CreateJobAsync(client, tenant, subject, html, text);
        var received = await stack.Mail.WaitForMailAsync(m => m.To.Contains(email) && m.Subject.StartsWith("Hello Ada & Co", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        using var editor = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Editor, EditorScopes, "ed@example.com"));
        using var response = await editor.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest(subject, html, text, new Dictionary<string, JsonElement>
        {
            ["email"] = JsonSerializer.SerializeToElement(email),
            ["first_name"] = JsonSerializer.SerializeToElement("Ada & Co"),
        }), StackFixture.Json);
        var preview = await StackFixture.ReadAsync<ComposePreviewResponse>(response, HttpStatusCode.OK);
        Assert.Equal(received.Subject, preview.Subject);
        Assert.Equal(received.Html!.TrimEnd(), preview.Html!.TrimEnd());
        Assert.Equal(received.Text!.TrimEnd(), preview.Text!.TrimEnd());
        Assert.Contains("Ada &amp; Co", preview.Html);

        // Without content.read (a viewer) the preview is refused; bad input is a 400.
        using var viewer = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Viewer, ViewerScopes, "vi@example.com"));
        using var refused = await viewer.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest(subject, html, text, null), StackFixture.Json);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        using var invalid = await editor.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest(null, null, null, null), StackFixture.Json);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("subject", await invalid.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Test_send_arrives_with_a_TEST_prefix_is_not_a_job_goes_only_to_a_persons_own_address_and_is_limited_to_10_a_minute()
    {
        var tenant = await stack.CreateTenantAsync();
        var me = $"me@{StackFixture.UniqueDomain()}";
        using var editor = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Editor, EditorScopes, me));
        var subject = "Try " + Guid.NewGuid().ToString("N")[..8];
        var request = new ComposeRequest(subject + " {{ first_name }}", null, "Hi {{ first_name }}",
            new Dictionary<string, JsonElement> { ["first_name"] = JsonSerializer.SerializeToElement("Tess") });

        using (var response = await editor.PostAsJsonAsync("api/send-jobs/test-send", request, StackFixture.Json))
        {
            var sent = await StackFixture.ReadAsync<TestSendResponse>(response, HttpStatusCode.OK);
            Assert.Equal(("sent", me), (sent.Outcome, sent.To));
        }
        var mail = await stack.Mail.WaitForMailAsync(m => m.To.Contains(me) && m.Subject == $"[TEST] {subject} Tess", TimeSpan.FromSeconds(30));
        Assert.Equal("Hi Tess", mail.Text!.TrimEnd());
        // Not a job.
        var jobs = await editor.GetFromJsonAsync<SendJobPage>("api/send-jobs", StackFixture.Json);
        Assert.Empty(jobs!.Items);

        // A person cannot test-send to someone else.
        using (var other = await editor.PostAsJsonAsync("api/send-jobs/test-send", request with { To = "someone@else.example" }, StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        }
        // A client with send.write may send to any address; the limit is per tenant: 10 a minute, then 429 problem+json.
        using var integration = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 10; i++)
        {
            using var response = await integration.PostAsJsonAsync("api/send-jobs/test-send", request with { To = $"qa{i}@{StackFixture.UniqueDomain()}" }, StackFixture.Json);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }
        }
        // One went out above, so the tenth from the integration is the eleventh in the minute.
        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 9), HttpStatusCode.TooManyRequests], statuses);
        // Another tenant is not affected.
        var other2 = await stack.CreateTenantAsync();
        using var otherClient = stack.SendEngineClient(await stack.SendTokenAsync(other2));
        using var fine = await otherClient.PostAsJsonAsync("api/send-jobs/test-send", request with { To = $"qa@{StackFixture.UniqueDomain()}" }, StackFixture.Json);
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
    }

    [Fact]
    public async Task A_viewer_gets_counts_but_null_bodies_while_editors_and_integrations_get_the_bodies()
    {
        var tenant = await stack.CreateTenantAsync();
        using var integration = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var job = await CreateJobAsync(integration, tenant, "Secret plans", "<p>the body</p>", "the body", DateTimeOffset.UtcNow.AddHours(1));

        using var viewer = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Viewer, ViewerScopes, "v@example.com"));
        var seen = await viewer.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal((job.Id, "Secret plans", SendJobStatuses.Scheduled), (seen!.Id, seen.Subject, seen.Status));
        Assert.Null(seen.BodyHtml);
        Assert.Null(seen.BodyText);
        var raw = await viewer.GetStringAsync($"api/send-jobs/{job.Id}");
        Assert.DoesNotContain("the body", raw);

        using var editor = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Editor, EditorScopes, "e@example.com"));
        var full = await editor.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal(("<p>the body</p>", "the body"), (full!.BodyHtml, full.BodyText));
        var asIntegration = await integration.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json);
        Assert.Equal(("<p>the body</p>", "the body"), (asIntegration!.BodyHtml, asIntegration.BodyText));
        // The viewer cannot operate the job either.
        using var pause = await viewer.PostAsync($"api/send-jobs/{job.Id}/pause", null);
        Assert.Equal(HttpStatusCode.Forbidden, pause.StatusCode);
    }

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient client, TestTenant tenant, string subject, string? html, string? text, DateTimeOffset at)
    {
        using var created = await client.PostAsJsonAsync("api/send-jobs",
            new CreateSendJobRequest(null, tenant.ListId, null, subject, html, text, at.ToString("O", CultureInfo.InvariantCulture)), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    [Fact]
    public async Task Transactional_tasks_are_searchable_and_readable_with_a_token_and_another_tenants_task_is_404()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        using (var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant)))
        {
            using var added = await se.PostAsJsonAsync("api/sender-domains", new Newsletter.Contracts.SenderDomains.AddSenderDomainRequest(domain), StackFixture.Json);
            Assert.True(added.IsSuccessStatusCode, await added.Content.ReadAsStringAsync());
        }
        using var keyClient = stack.SendEngineClient();
        keyClient.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var to = $"buyer@{domain}";
        using var posted = await keyClient.PostAsJsonAsync("api/v1/email", new
        {
            message = new
            {
                from_email = $"shop@{domain}",
                subject = "Receipt",
                text = "Thanks",
                to = new[] { new { email = to } },
                metadata = new Dictionary<string, object> { ["order"] = "A-17" },
            },
        });
        var answer = await StackFixture.ReadAsync<SendEmailResponse>(posted, HttpStatusCode.OK);
        var taskId = Assert.Single(answer.Tasks).TaskId;

        using var viewer = stack.SendEngineClient(await PersonTokenAsync(tenant, Roles.Viewer, ViewerScopes, "v@example.com"));
        var byMetadata = await StackFixture.ReadAsync<EmailTaskPage>(await viewer.GetAsync("api/transactional/requests?metadata.order=A-17"), HttpStatusCode.OK);
        Assert.Equal(taskId, Assert.Single(byMetadata.Items).TaskId);
        var byEmail = await StackFixture.ReadAsync<EmailTaskPage>(await viewer.GetAsync($"api/transactional/requests?email={Uri.EscapeDataString(to.ToUpperInvariant())}"), HttpStatusCode.OK);
        Assert.Equal(taskId, Assert.Single(byEmail.Items).TaskId);
        var none = await StackFixture.ReadAsync<EmailTaskPage>(await viewer.GetAsync("api/transactional/requests?metadata.order=B-1"), HttpStatusCode.OK);
        Assert.Empty(none.Items);
        var task = await StackFixture.ReadAsync<EmailTaskResponse>(await viewer.GetAsync($"api/transactional/tasks/{taskId}"), HttpStatusCode.OK);
        Assert.Equal((taskId, to), (task.TaskId, task.Email));

        using var badFrom = await viewer.GetAsync("api/transactional/requests?from=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, badFrom.StatusCode);
        Assert.Equal("application/problem+json", badFrom.Content.Headers.ContentType?.MediaType);
        Assert.Contains("\"from\"", await badFrom.Content.ReadAsStringAsync());

        var stranger = await stack.CreateTenantAsync();
        using var strangerClient = stack.SendEngineClient(await PersonTokenAsync(stranger, Roles.Owner, EditorScopes, "o@example.com"));
        using var notFound = await strangerClient.GetAsync($"api/transactional/tasks/{taskId}");
        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        Assert.Equal("application/problem+json", notFound.Content.Headers.ContentType?.MediaType);
        var strangerSearch = await StackFixture.ReadAsync<EmailTaskPage>(await strangerClient.GetAsync("api/transactional/requests?metadata.order=A-17"), HttpStatusCode.OK);
        Assert.Empty(strangerSearch.Items);
    }

    [Fact]
    public async Task Admin_status_reports_queues_backlogs_and_the_last_hours_delivery_to_operators_only()
    {
        var tenant = await stack.CreateTenantAsync();
        using var integration = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        using (var sent = await integration.PostAsJsonAsync("api/send-jobs/test-send",
            new ComposeRequest("Status probe", null, "x", null, $"probe@{StackFixture.UniqueDomain()}"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.OK, sent.StatusCode);
        }
        using var admin = stack.SendEngineClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var status = await StackFixture.ReadAsync<SendEngineStatusResponse>(await admin.GetAsync("admin/status"), HttpStatusCode.OK);
        Assert.True(status.SentLastHour >= 1, $"sent_last_hour {status.SentLastHour}");
        Assert.True(status.DeliveryRatePerMinute > 0);
        Assert.InRange(status.ErrorRate, 0, 1);
        Assert.True(status.Hangfire.Queues.Count >= 0 && status.Hangfire.Enqueued >= 0 && status.EmailEventBacklog >= 0);
        Assert.True(Math.Abs((status.At - DateTimeOffset.UtcNow).TotalMinutes) < 1);
        var raw = await admin.GetStringAsync("admin/status");
        foreach (var field in new[] { "\"hangfire\"", "\"scheduled\"", "\"processing\"", "\"failed\"", "\"email_event_backlog\"", "\"webhook_outbox_pending\"", "\"oldest_pending_report_at\"", "\"error_rate\"" })
        {
            Assert.Contains(field, raw);
        }

        using var tenantStatus = await integration.GetAsync("admin/status");
        Assert.Equal(HttpStatusCode.Forbidden, tenantStatus.StatusCode);
    }
}
