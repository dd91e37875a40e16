using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Features.EmailEvents;
using SendEngine.Features.Metrics;
using static SendEngine.Tests.TestDatabase;

namespace SendEngine.Tests;

/// <summary>
/// Tencent SES end to end: the SendEmail adapter against a local stand-in that re-verifies TC3 signatures, the webhook
/// in both payload formats driving every effect (recipient status, suppressions, Member Center, counters, statistics),
/// duplicates, authentication and bad input, and a crash between persisting and processing.
/// </summary>
[LongRunning(123)]
public sealed class TencentSesTests(StackFixture stack)
{
    private const string SigningKey = "test-webhook-signing-key-0123456789";
    private const string SecretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";

    [Fact]
    public async Task Tencent_delivery_and_webhook_events_in_both_formats_drive_every_effect()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        string A(string local) => $"{local}@{domain}";
        var emails = new[] { "ok", "bounce", "spam", "unsub", "soft", "rejected", "blocked", "throttled" }.Select(A).ToList();
        await stack.SubscribeAsync(tenant, emails);

        await using var ses = new TencentSesStandIn("AKIDtest", SecretKey);
        ses.Script[A("blocked")] = new ConcurrentQueue<string>(["FailedOperation.EmailAddrInBlacklist"]);
        // 503 is retried inside the HTTP call; RequestLimitExceeded makes the runner retry the recipient later.
        ses.Script[A("throttled")] = new ConcurrentQueue<string>(["HTTP 503", "RequestLimitExceeded"]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(ses, new()
        {
            ["Delivery:TenantTransports:" + tenant.TenantId] = "tencent",
            ["Smtp:ReplyToAddress"] = "replies@sender.example",
            ["TencentSes:Unsubscribe"] = "2",
        }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Tencent hello",
            "<p>Hello {{ email }}</p>", "Hello {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(8, done.Counts.Total);
        Assert.True(done.Counts.Sent == 7, string.Join("\n", (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items));
        Assert.Equal(1, done.Counts.Failed);

        // What Tencent received: signed requests (verified independently), one recipient each, the message's content.
        var calls = ses.Calls.ToList();
        Assert.All(calls, c => Assert.True(c.SignatureValid));
        Assert.All(calls, c => Assert.Equal(("SendEmail", "2020-10-02", "ap-guangzhou"), (c.Action, c.Version, c.Region)));
        var okCall = calls.Single(c => c.Destination.SequenceEqual([A("ok")]));
        Assert.Equal("Test Sender <news@sender.example>", okCall.From);
        Assert.Equal("Tencent hello", okCall.Subject);
        Assert.Equal($"<p>Hello {A("ok")}</p>", okCall.Html);
        Assert.Equal($"Hello {A("ok")}", okCall.Text);
        Assert.Equal("replies@sender.example", okCall.ReplyTo);
        Assert.Equal("2", okCall.Unsubscribe); // SendEmail's own unsubscribe footer option, as configured
        // Our Message-ID and the RFC 8058 headers go along as SMTP headers.
        Assert.Matches(@"^<[^<>@\s]+@sender\.example>$", okCall.SmtpMessageId);
        var firstCalls = calls.DistinctBy(c => c.Destination[0]).ToList();
        Assert.Equal(firstCalls.Count, firstCalls.Select(c => c.SmtpMessageId).Distinct().Count());
        Assert.Matches(@"^<http://[^>]+/newsletter/unsubscribe\?token=[^>]+>$", okCall.SmtpHeaders["List-Unsubscribe"]);
        Assert.Equal("List-Unsubscribe=One-Click", okCall.SmtpHeaders["List-Unsubscribe-Post"]);
        Assert.Equal(3, calls.Count(c => c.Destination[0] == A("throttled")));

        var recipients = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email);
        Assert.Equal(okCall.Answer, recipients[A("ok")].MessageId);
        Assert.Equal("failed", recipients[A("blocked")].Status);
        Assert.Contains("FailedOperation.EmailAddrInBlacklist", recipients[A("blocked")].Detail);
        Assert.Equal("sent", recipients[A("throttled")].Status);
        string Id(string local) => recipients[A(local)].MessageId!;

        var now = DateTimeOffset.UtcNow;
        string Iso(int s) => now.AddSeconds(s).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        long Unix(int s) => now.AddSeconds(s).ToUnixTimeSeconds();
        var tencentDelivered = Json(new { @event = "delivered", email = A("ok"), bulkId = Id("ok"), timestamp = Unix(1), username = "251200670", from = "news@sender.example" });
        var specOpen = Json(new { eventType = "open", messageId = Id("ok"), email = A("ok"), timestamp = Iso(2), userAgent = "Mozilla/5.0", ipAddress = "192.0.2.1" });
        var events = new List<string>
        {
            tencentDelivered,
            specOpen,
            Json(new { @event = "click", email = A("ok"), bulkId = Id("ok"), timestamp = Unix(3), link = "https://news.example/a", useragent = "Mozilla/5.0" }),
            Json(new { @event = "brand_new_type", email = A("ok"), bulkId = Id("ok"), timestamp = Unix(4) }),
            Json(new { @event = "bounce", email = A("bounce"), bulkId = Id("bounce"), timestamp = Unix(1), reason = "551 5.1.1 recipient is not exist", bounceType = "hard_bounce" }),
            Json(new { @event = "spamreport", email = A("spam"), bulkId = Id("spam"), timestamp = Unix(1) }),
            Json(new { eventType = "unsubscribe", messageId = Id("unsub"), email = A("unsub"), timestamp = Iso(1), unsubscribeType = "one-click" }),
            Json(new { eventType = "bounce", messageId = Id("soft"), email = A("soft"), timestamp = Iso(1), bounceType = "Transient", bounceSubType = "MailboxFull" }),
            Json(new { @event = "bounce", email = A("soft"), bulkId = Id("soft"), timestamp = Unix(2), bounceType = "soft_bounce", reason = "452 mailbox full" }),
            Json(new { eventType = "bounce", messageId = Id("soft"), email = A("soft"), timestamp = Iso(3), bounceType = "Transient", bounceSubType = "MailboxFull" }),
            Json(new { eventType = "reject", messageId = Id("rejected"), email = A("rejected"), timestamp = Iso(1), reason = "Content policy violation" }),
            Json(new { @event = "deferred", email = A("throttled"), bulkId = Id("throttled"), timestamp = Unix(1) }),
            Json(new { @event = "delivered", email = A("ghost"), bulkId = "qcloudses-unknown-" + Guid.NewGuid(), timestamp = Unix(1) }),
        };
        using var hook = engine.CreateClient();
        foreach (var body in events)
        {
            var r = await PostSignedAsync(hook, body);
            Assert.Equal(1, r.GetProperty("stored").GetInt32());
        }
        // Tencent retries: the same callback again changes nothing.
        Assert.Equal(1, (await PostSignedAsync(hook, specOpen)).GetProperty("duplicates").GetInt32());
        Assert.Equal(1, (await PostSignedAsync(hook, tencentDelivered)).GetProperty("duplicates").GetInt32());

        await WaitProcessedAsync(db);
        var final = (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json))!;
        Assert.Equal(new SendJobEventCounts(Delivered: 1, OpenedUnique: 1, OpenedTotal: 1, ClickedUnique: 1, ClickedTotal: 1, Bounced: 2,
            SoftBounced: 3, Deferred: 1, Rejected: 1, Complained: 1, Unsubscribed: 1), final.Events);
        Assert.Equal(1, final.Counts.Delivered);
        Assert.Equal(2, final.Counts.Bounced);

        recipients = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email);
        Assert.Equal("delivered", recipients[A("ok")].Status);
        Assert.Equal("bounced", recipients[A("bounce")].Status);
        Assert.Equal("bounced", recipients[A("soft")].Status);
        Assert.Equal("failed", recipients[A("rejected")].Status);
        Assert.Contains("Content policy violation", recipients[A("rejected")].Detail);

        var suppressed = await QueryAsync(db, "SELECT email, reason FROM suppressions WHERE source = 'esp'");
        Assert.Equal(new Dictionary<string, string> { [A("bounce")] = "hard_bounce", [A("spam")] = "complaint", [A("soft")] = "hard_bounce" },
            suppressed.ToDictionary(r => (string)r[0], r => (string)r[1]));

        // Member Center: hard bounces undeliverable, complaint and unsubscribe off the list (consent audit source "esp").
        await WaitUntilAsync(async () => (long)(await QueryAsync(db, "SELECT count(*) FROM member_center_reports WHERE completed_at IS NULL")).Single()[0] == 0);
        using var internalClient = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        var notSendable = await StackFixture.PostAsync<SubscriptionStatusResult>(internalClient, $"internal/lists/{tenant.ListId}/not-sendable",
            new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, emails));
        Assert.Equal(new[] { A("bounce"), A("soft"), A("spam"), A("unsub") }.Order(), notSendable.NotSendable.Order());
        // The consent trail keeps what the ESP said: the bounce reason, the unsubscribe type.
        var esp = (await QueryAsync(stack.MemberCenterConnectionString, """
            SELECT p.email, c.action, coalesce(c.details::text, '') FROM consent_records c JOIN subscribers p ON p.id = c.subscriber_id
            WHERE c.source = 'esp' AND p.email = ANY($1)
            """, (object)new[] { A("bounce"), A("unsub") })).ToDictionary(r => (string)r[0], r => ((string)r[1], (string)r[2]));
        Assert.Equal("marked_undeliverable", esp[A("bounce")].Item1);
        Assert.Contains("551 5.1.1 recipient is not exist", esp[A("bounce")].Item2);
        Assert.Equal("unsubscribe", esp[A("unsub")].Item1);
        Assert.Contains("unsubscribe type one-click", esp[A("unsub")].Item2);

        // Recorded by the batch's one UPDATE of events without effects: processed once, with what they changed.
        var unknown = await QueryAsync(db, "SELECT outcome, job_id IS NULL, processed_at IS NOT NULL, attempts, effect FROM email_events WHERE email = $1", A("ghost"));
        Assert.Equal(["unknown_message", true, true, 1, "nothing: no message with this id"], unknown.Single());
        var ignored = await QueryAsync(db, "SELECT event_type, outcome, processed_at IS NOT NULL, attempts FROM email_events WHERE raw_event_type = 'brand_new_type'");
        Assert.Equal(["unknown", "ignored", true, 1], ignored.Single());

        var stats = (await se.GetFromJsonAsync<EmailStatisticsResponse>($"api/email-addresses/{Uri.EscapeDataString(A("ok").ToUpperInvariant())}/statistics", StackFixture.Json))!;
        Assert.Equal((1, 1, 1, 1, 0), (stats.TotalSent, stats.TotalDelivered, stats.TotalOpened, stats.TotalClicked, stats.TotalBounced));
        Assert.NotNull(stats.LastActivity);
        var history = (await se.GetFromJsonAsync<EmailEventPage>($"api/email-addresses/{A("ok")}/events", StackFixture.Json))!;
        Assert.Equal(["delivered", "open", "click", "unknown"], history.Items.Select(e => e.EventType));
        var jobEvents = (await se.GetFromJsonAsync<EmailEventPage>($"api/send-jobs/{job.Id}/events?limit=500", StackFixture.Json))!;
        Assert.Equal(12, jobEvents.Items.Count);

        // Another tenant sees none of it.
        var other = await stack.CreateTenantAsync("Other");
        using var otherClient = engine.CreateClient();
        otherClient.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(other));
        Assert.Equal(HttpStatusCode.NotFound, (await otherClient.GetAsync($"api/send-jobs/{job.Id}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await otherClient.GetAsync($"api/email-addresses/{A("ok")}/statistics")).StatusCode);
        Assert.Empty((await otherClient.GetFromJsonAsync<EmailEventPage>($"api/email-addresses/{A("ok")}/events", StackFixture.Json))!.Items);

        var metrics = await StackFixture.MetricsAsync(hook);
        Assert.Contains("sendengine_webhook_callbacks_total{", metrics);
        Assert.Contains("outcome=\"duplicate\"", metrics);
        Assert.Contains("sendengine_deliveries_total{", metrics);
        Assert.Contains("transport=\"tencent\"", metrics);
        Assert.Contains("sendengine_email_events_processing_latency_seconds_bucket", metrics);
        // The runtime's own meter: GC pauses and the thread pool's queue.
        Assert.Contains("dotnet_gc_pause_time_seconds_total", metrics);
        Assert.Contains("dotnet_thread_pool_queue_length", metrics);
    }

    [Fact]
    public async Task Webhook_refuses_bad_signatures_stale_timestamps_and_bad_bodies_and_stores_nothing_for_them()
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new() { ["EmailEvents:ProcessorEnabled"] = "false" }));
        using var hook = engine.CreateClient();
        var body = Json(new { @event = "delivered", email = "a@example.com", bulkId = "b-1", timestamp = 1654064683 });

        await PostSignedAsync(hook, body);
        // Replay inside the window: accepted as a duplicate.
        Assert.Equal(1, (await PostSignedAsync(hook, body)).GetProperty("duplicates").GetInt32());

        await AssertProblemAsync(await SendAsync(hook, body, signature: new string('0', 64)), 401);
        await AssertProblemAsync(await SendAsync(hook, body, signature: "not-hex"), 401);
        await AssertProblemAsync(await SendAsync(hook, body, key: "another-key-of-enough-length"), 401);
        // Whole seconds are compared, so 301 ahead is 300 when a second boundary passes before the check: 303 is safe.
        await AssertProblemAsync(await SendAsync(hook, body, timestamp: DateTimeOffset.UtcNow.AddSeconds(-301).ToUnixTimeSeconds()), 401);
        await AssertProblemAsync(await SendAsync(hook, body, timestamp: DateTimeOffset.UtcNow.AddSeconds(303).ToUnixTimeSeconds()), 401);
        using (var unsigned = new HttpRequestMessage(HttpMethod.Post, "api/tencent/ses/webhook") { Content = new StringContent(body, Encoding.UTF8, "application/json") })
        {
            await AssertProblemAsync(await hook.SendAsync(unsigned), 401);
        }
        await AssertProblemAsync(await SendAsync(hook, "{\"event\":"), 400);
        await AssertProblemAsync(await SendAsync(hook, "[1,2]"), 400);
        // jsonb refuses these; one such callback must not fail the batch it would be written with.
        await AssertProblemAsync(await SendAsync(hook, """{"event":"open","email":"a@example.com","bulkId":"b-3","timestamp":1,"useragent":"x\u0000"}"""), 400);
        await AssertProblemAsync(await SendAsync(hook, """{"event":"\udc00","email":"a@example.com","bulkId":"b-4","timestamp":1}"""), 400);
        await AssertProblemAsync(await SendAsync(hook, """{"event":"open","email":"a@example.com","bulkId":"b-5","timestamp":1,"extra":{"n":1e200000}}"""), 400);
        // A date the processor cannot do arithmetic on (0001-01-02 minus the soft-bounce window) is refused up front.
        var ancient = await AssertProblemAsync(await SendAsync(hook, Json(new { eventType = "bounce", messageId = "m-1", email = "a@example.com",
            timestamp = "0001-01-02T00:00:00Z", bounceType = "Transient" })), 400);
        Assert.True(ancient.GetProperty("errors").TryGetProperty("timestamp", out _));
        var missing = await SendAsync(hook, Json(new { @event = "delivered", email = "a@example.com", timestamp = 1 }));
        var problem = await AssertProblemAsync(missing, 400);
        Assert.True(problem.GetProperty("errors").TryGetProperty("bulkId", out _));
        var huge = Json(new { @event = "delivered", email = "a@example.com", bulkId = "b-2", timestamp = 1, reason = new string('x', 300 * 1024) });
        await AssertProblemAsync(await SendAsync(hook, huge), 413);

        Assert.Equal(1L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);
        var metrics = await StackFixture.MetricsAsync(hook);
        Assert.Contains("sendengine_webhook_signature_failures_total{", metrics);
        Assert.Contains("reason=\"stale_timestamp\"", metrics);
        Assert.Contains("sendengine_webhook_rejected_total{", metrics);
        Assert.Contains("reason=\"body_too_large\"", metrics);
    }

    [Fact]
    public async Task Without_webhook_verification_Send_Engine_refuses_to_start_in_Production()
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new()
        {
            ["environment"] = "Production",
            ["TencentSes:Webhook:Verification"] = "None",
        }));

        var refused = Assert.ThrowsAny<Exception>(() => engine.Server);
        Assert.Contains("TencentSes:Webhook:Verification is None in Production", refused.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_is_a_413_and_event_reads_need_the_read_scope()
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new() { ["EmailEvents:ProcessorEnabled"] = "false" }));
        using var hook = engine.CreateClient();
        // No Content-Length: the limit must hold while the body is read, not only from the header.
        var huge = Encoding.UTF8.GetBytes(Json(new { @event = "delivered", email = "a@example.com", bulkId = "b-1", timestamp = 1654064683, reason = new string('x', 300 * 1024) }));
        using (var chunked = new HttpRequestMessage(HttpMethod.Post, "api/tencent/ses/webhook") { Content = new StreamContent(new NoLengthStream(huge)) })
        {
            chunked.Content.Headers.ContentType = new("application/json");
            chunked.Headers.TransferEncodingChunked = true;
            await AssertProblemAsync(await hook.SendAsync(chunked), 413);
        }
        Assert.Equal(0L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);

        // A token with only newsletter:send.write may not read events or statistics.
        var tenant = await stack.CreateTenantAsync();
        using var writer = engine.CreateClient();
        writer.DefaultRequestHeaders.Authorization = new("Bearer", await stack.TokenAsync(tenant.SendClientId, tenant.SendClientSecret, Scopes.SendWrite));
        Assert.Equal(HttpStatusCode.Forbidden, (await writer.GetAsync($"api/send-jobs/{Guid.NewGuid()}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await writer.GetAsync("api/email-addresses/a@example.com/statistics")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await writer.GetAsync("api/email-addresses/a@example.com/events")).StatusCode);
    }

    /// <summary>A readable stream that will not tell its length, so HttpClient sends it chunked.</summary>
    private sealed class NoLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }

    [Fact]
    public async Task Soft_bounces_count_as_hard_only_within_the_window()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"flaky@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        // Three soft bounces within a day make a hard one.
        await using var engine = stack.CreateSendEngine(db, Settings(null, new() { ["EmailEvents:SoftBounceWindow"] = "1.00:00:00" }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Window", null, "Hi", null), StackFixture.Json);
        var jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed);
        var messageId = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().MessageId!;
        using var hook = engine.CreateClient();
        var now = DateTimeOffset.UtcNow;
        Task<JsonElement> SoftBounceAsync(TimeSpan ago) => PostSignedAsync(hook, Json(new
        {
            eventType = "bounce", messageId, email, bounceType = "Transient", bounceSubType = "MailboxFull",
            timestamp = (now - ago).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        }));
        async Task<string> StatusAsync() => (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().Status;

        // Two days ago, then two within the last three hours: the oldest is outside the day before the third.
        await SoftBounceAsync(TimeSpan.FromDays(2));
        await SoftBounceAsync(TimeSpan.FromHours(3));
        await SoftBounceAsync(TimeSpan.FromHours(2));
        await WaitProcessedAsync(db);
        Assert.Equal("sent", await StatusAsync());
        Assert.Empty(await QueryAsync(db, "SELECT 1 FROM suppressions WHERE email = $1", email));

        // A third within the day: a hard bounce.
        await SoftBounceAsync(TimeSpan.FromHours(1));
        await WaitProcessedAsync(db);
        Assert.Equal("bounced", await StatusAsync());
        Assert.Equal(["hard_bounce"], (await QueryAsync(db, "SELECT reason FROM suppressions WHERE email = $1", email)).Single());
        Assert.Equal(["applied_as_hard_bounce"], (await QueryAsync(db, "SELECT outcome FROM email_events WHERE occurred_at > now() - interval '90 minutes'")).Single());
    }

    [Fact]
    public async Task Token_mode_accepts_the_secret_in_the_query_or_a_header()
    {
        const string secret = "url-secret-token-0123456789";
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new()
        {
            ["TencentSes:Webhook:Verification"] = "Token",
            ["TencentSes:Webhook:SecretToken"] = secret,
            ["EmailEvents:ProcessorEnabled"] = "false",
        }));
        using var hook = engine.CreateClient();
        StringContent Body(int n) => new(Json(new { @event = "open", email = "a@example.com", bulkId = "b", timestamp = 1654064683 + n }), Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.OK, (await hook.PostAsync("api/tencent/ses/webhook?token=" + secret, Body(1))).StatusCode);
        using var withHeader = new HttpRequestMessage(HttpMethod.Post, "api/tencent/ses/webhook") { Content = Body(2) };
        withHeader.Headers.Add("X-Webhook-Token", secret);
        Assert.Equal(HttpStatusCode.OK, (await hook.SendAsync(withHeader)).StatusCode);
        await AssertProblemAsync(await hook.PostAsync("api/tencent/ses/webhook?token=wrong", Body(3)), 401);
        await AssertProblemAsync(await hook.PostAsync("api/tencent/ses/webhook", Body(4)), 401);
        Assert.Equal(2L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);
    }

    [Fact]
    public async Task Events_persisted_before_a_crash_are_processed_by_the_next_process()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"crash@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        string messageId;
        string jobId;
        // First process, a real one: SMTP delivery, then the webhook stores two events and answers 200, and the process is
        // killed (SIGKILL: nothing flushed or finished on the way out). Its processor is off, so the crash always lands
        // between storing and processing.
        await using (var first = await SendEngineProcess.StartAsync(stack.SendEngineSettings(db, Settings(null, new() { ["EmailEvents:ProcessorEnabled"] = "false" }))))
        {
            using var se = first.CreateClient();
            se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
            using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Crash", null, "Hi", null), StackFixture.Json);
            jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
            await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed);
            messageId = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().MessageId!;
            using var hook = first.CreateClient();
            // The SMTP Message-ID correlates too (Tencent's messageId field, in angle brackets).
            Assert.Equal(1, (await PostSignedAsync(hook, Json(new { @event = "delivered", email, bulkId = "not-ours", messageId = $"<{messageId}>", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() }))).GetProperty("stored").GetInt32());
            Assert.Equal(1, (await PostSignedAsync(hook, Json(new { eventType = "bounce", messageId, email, timestamp = DateTimeOffset.UtcNow.ToString("O"), bounceType = "Permanent" }))).GetProperty("stored").GetInt32());
            await first.KillAsync();
        }
        // Answered 200 means stored: both survived the crash, unprocessed.
        Assert.Equal(2L, (await QueryAsync(db, "SELECT count(*) FROM email_events WHERE processed_at IS NULL")).Single()[0]);

        await using var second = stack.CreateSendEngine(db, Settings(null));
        _ = second.Server;
        await WaitProcessedAsync(db);
        using var client = second.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var job = (await client.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{jobId}", StackFixture.Json))!;
        Assert.Equal(1, job.Events!.Delivered);
        Assert.Equal(1, job.Events.Bounced);
        Assert.Equal("bounced", (await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().Status);
        Assert.Single(await QueryAsync(db, "SELECT 1 FROM suppressions WHERE email = $1 AND reason = 'hard_bounce'", email));
        Assert.Equal(2L, (await QueryAsync(db, "SELECT count(*) FROM email_events WHERE outcome = 'applied'")).Single()[0]);
    }

    [Fact]
    public async Task While_PostgreSQL_is_down_the_webhook_answers_503_and_stores_the_retry_once_it_is_back()
    {
        // A server of our own that really stops (connections refused), not a lock on the table.
        await using var postgres = await PostgresServer.StartDurableAsync(TestContext.Current.CancellationToken);
        var db = await postgres.CreateDatabaseAsync("se");
        await using var engine = stack.CreateSendEngine(db, Settings(null));
        using var hook = engine.CreateClient(); // started: the tables exist
        var before = Json(new { @event = "open", email = "a@example.com", bulkId = "b-1", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() });
        var during = Json(new { @event = "open", email = "a@example.com", bulkId = "b-2", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() });
        Assert.Equal(1, (await PostSignedAsync(hook, before)).GetProperty("stored").GetInt32());

        await postgres.StopAsync(immediate: false, TestContext.Current.CancellationToken);
        using (var down = await SendAsync(hook, during))
        {
            Assert.Equal(TimeSpan.FromSeconds(5), down.Headers.RetryAfter?.Delta);
            Assert.Equal("Event store unavailable", (await AssertProblemAsync(down, 503)).GetProperty("title").GetString());
        }

        await postgres.StartAsync(TestContext.Current.CancellationToken);
        // Tencent's retry: stored now, the earlier one a duplicate; both processed.
        await WaitUntilAsync(async () =>
        {
            using var retry = await SendAsync(hook, during);
            return retry.StatusCode == HttpStatusCode.OK;
        });
        Assert.Equal(1, (await PostSignedAsync(hook, before)).GetProperty("duplicates").GetInt32());
        Assert.Equal(["b-1", "b-2"], (await QueryAsync(db, "SELECT message_id FROM email_events ORDER BY id")).Select(r => (string)r[0]));
        await WaitProcessedAsync(db);
    }

    [Fact]
    public async Task The_event_types_not_covered_above_reach_their_effects_in_the_other_format()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        string A(string local) => $"{local}@{domain}";
        var locals = new[] { "t-unsub", "t-open", "t-dropped", "t-processed", "s-delivery", "s-click", "s-complaint" };
        await stack.SubscribeAsync(tenant, locals.Select(A).ToList());
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Formats", null, "Hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        var ids = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email, r => r.MessageId!);
        var unix = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var iso = DateTimeOffset.UtcNow.ToString("O");
        using var hook = engine.CreateClient();
        foreach (var body in new[]
        {
            Json(new { @event = "unsubscribe", email = A("t-unsub"), bulkId = ids[A("t-unsub")], timestamp = unix }),
            Json(new { @event = "open", email = A("t-open"), bulkId = ids[A("t-open")], timestamp = unix, useragent = "Mail/1" }),
            Json(new { @event = "dropped", email = A("t-dropped"), bulkId = ids[A("t-dropped")], timestamp = unix, reason = "invalid domain" }),
            Json(new { @event = "processed", email = A("t-processed"), bulkId = ids[A("t-processed")], timestamp = unix }),
            Json(new { eventType = "delivery", messageId = ids[A("s-delivery")], email = A("s-delivery"), timestamp = iso }),
            Json(new { eventType = "click", messageId = ids[A("s-click")], email = A("s-click"), timestamp = iso, link = "https://x.example/" }),
            Json(new { eventType = "complaint", messageId = ids[A("s-complaint")], email = A("s-complaint"), timestamp = iso }),
        })
        {
            await PostSignedAsync(hook, body);
        }
        await WaitProcessedAsync(db);
        await WaitUntilAsync(async () => (long)(await QueryAsync(db, "SELECT count(*) FROM member_center_reports WHERE completed_at IS NULL")).Single()[0] == 0);

        var rows = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items.ToDictionary(r => r.Email);
        Assert.Equal("delivered", rows[A("s-delivery")].Status);
        Assert.Equal("failed", rows[A("t-dropped")].Status);
        Assert.Contains("invalid domain", rows[A("t-dropped")].Detail);
        Assert.Equal("sent", rows[A("t-processed")].Status);
        var outcomes = (await QueryAsync(db, "SELECT email, event_type, outcome FROM email_events")).ToDictionary(r => (string)r[0], r => ((string)r[1], (string)r[2]));
        Assert.Equal(("processed", "ignored"), outcomes[A("t-processed")]);
        Assert.Equal(("spamreport", "applied"), outcomes[A("s-complaint")]);
        Assert.Equal([A("s-complaint")], (await QueryAsync(db, "SELECT email FROM suppressions WHERE reason = 'complaint'")).Select(r => (string)r[0]));
        async Task<EmailStatisticsResponse> Stats(string local) =>
            (await se.GetFromJsonAsync<EmailStatisticsResponse>($"api/email-addresses/{A(local)}/statistics", StackFixture.Json))!;
        Assert.Equal(1, (await Stats("t-open")).TotalOpened);
        Assert.Equal(1, (await Stats("s-click")).TotalClicked);
        Assert.Equal(1, (await Stats("s-delivery")).TotalDelivered);
        var events = (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json))!.Events!;
        Assert.Equal((1, 1, 1, 1, 1), (events.Unsubscribed, events.OpenedUnique, events.ClickedUnique, events.Complained, events.Delivered));

        // Member Center: the unsubscribe left the job's list, the complaint every list of the tenant.
        using var internalClient = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        var notSendable = await StackFixture.PostAsync<SubscriptionStatusResult>(internalClient, $"internal/lists/{tenant.ListId}/not-sendable",
            new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, locals.Select(A).ToList()));
        Assert.Equal(new[] { A("s-complaint"), A("t-unsub") }.Order(), notSendable.NotSendable.Order());
    }

    [Fact]
    public async Task An_event_whose_effects_throw_is_retried_and_given_up_without_blocking_the_events_after_it()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        string A(string local) => $"{local}@{domain}";
        await stack.SubscribeAsync(tenant, [A("poison"), A("ok")]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new() { ["EmailEvents:MaxAttempts"] = "2" }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Poison", null, "Hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        var ids = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email, r => r.MessageId!);

        // A row the parser would refuse (stored by an older version, or by hand): its soft-bounce window starts before
        // DateTimeOffset.MinValue, so applying it throws ArgumentOutOfRangeException, not a PostgreSQL error.
        await QueryAsync(db, """
            INSERT INTO email_events (idempotency_key, format, event_type, raw_event_type, message_id, email, occurred_at, bounce_type,
                payload, received_at, attempts)
            VALUES ($1, 'spec', 'soft_bounce', 'bounce', $2, $3, '0001-01-02T00:00:00Z', 'Transient', '{}', now(), 0)
            RETURNING id
            """, Guid.NewGuid().ToString("N"), ids[A("poison")], A("poison"));
        using var hook = engine.CreateClient();
        await PostSignedAsync(hook, Json(new { @event = "delivered", email = A("ok"), bulkId = ids[A("ok")], timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() }));

        await WaitProcessedAsync(db);
        var rows = (await QueryAsync(db, "SELECT email, outcome, attempts, coalesce(last_error, '') FROM email_events ORDER BY id"))
            .Select(r => ((string)r[0], (string)r[1], (int)r[2], (string)r[3])).ToList();
        Assert.Equal((A("poison"), "failed", 2), (rows[0].Item1, rows[0].Item2, rows[0].Item3));
        Assert.StartsWith("ArgumentOutOfRangeException", rows[0].Item4);
        Assert.Equal((A("ok"), "applied"), (rows[1].Item1, rows[1].Item2));
        var recipients = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email, r => r.Status);
        Assert.Equal("delivered", recipients[A("ok")]);
        // The failed attempts were rolled back to their savepoint: no soft bounce counted, no suppression.
        Assert.Equal("sent", recipients[A("poison")]);
        Assert.Empty(await QueryAsync(db, "SELECT 1 FROM email_statistics WHERE email = $1", A("poison")));
    }

    [Fact]
    public async Task A_reply_of_an_unexpected_shape_fails_that_recipient_and_not_the_job()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        string A(string local) => $"{local}@{domain}";
        await stack.SubscribeAsync(tenant, [A("array"), A("number"), A("ok")]);
        await using var ses = new TencentSesStandIn("AKIDtest", SecretKey);
        ses.Script[A("array")] = new ConcurrentQueue<string>(["RAW [1,2]"]);
        ses.Script[A("number")] = new ConcurrentQueue<string>(["RAW {\"Response\":{\"MessageId\":42,\"RequestId\":\"r-1\"}}"]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(ses, new() { ["Delivery:TenantTransports:" + tenant.TenantId] = "tencent" }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Shapes", null, "Hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);

        Assert.Equal((1, 0, 2), (done.Counts.Sent, done.Counts.Failed, done.Counts.Unknown));
        var rows = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?limit=100", StackFixture.Json))!.Items
            .ToDictionary(r => r.Email);
        Assert.Equal(("unknown", "outcome unknown: Tencent SES answered in an unexpected shape: [1,2]; not retried to avoid a duplicate"),
            (rows[A("array")].Status, rows[A("array")].Detail));
        Assert.Equal("unknown", rows[A("number")].Status);
        Assert.Contains("\"MessageId\":42", rows[A("number")].Detail);
        // Answered 200, so possibly sent: not retried.
        Assert.Equal(1, ses.Calls.Count(c => c.Destination[0] == A("number")));
        Assert.Equal("sent", rows[A("ok")].Status);
    }

    [Fact]
    public async Task A_call_that_times_out_after_the_request_went_out_is_not_sent_again()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"slow@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        await using var ses = new TencentSesStandIn("AKIDtest", SecretKey);
        ses.Script[email] = new ConcurrentQueue<string>(["HANG"]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(ses, new()
        {
            ["Delivery:TenantTransports:" + tenant.TenantId] = "tencent",
            // Long enough for a loaded machine to get the request to the stand-in, which records it on arrival.
            ["TencentSes:Timeout"] = "00:00:03",
        }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Slow", null, "Hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);

        Assert.Equal((0, 1), (done.Counts.Failed, done.Counts.Unknown));
        Assert.Single(ses.Calls);
        var row = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients", StackFixture.Json))!.Items.Single();
        Assert.Equal(RecipientStatuses.Unknown, row.Status);
        Assert.StartsWith("outcome unknown", row.Detail);
    }

    [Fact]
    public async Task A_hard_bounce_suppresses_at_once_while_Member_Center_is_down_and_is_reported_when_it_is_back()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"later@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var gate = new GatedMemberCenter(stack.MemberCenterUrl) { FailReports = true };
        gate.Open();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new() { ["MemberCenter:BaseUrl"] = gate.Url }));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Later", null, "Hi", null), StackFixture.Json);
        var jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed);
        var messageId = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().MessageId!;

        await PostSignedAsync(engine.CreateClient(), Json(new { eventType = "bounce", messageId, email, timestamp = DateTimeOffset.UtcNow.ToString("O"), bounceType = "Permanent" }));
        await WaitProcessedAsync(db);

        // Send Engine's own effects are in although Member Center refused the report.
        Assert.Single(await QueryAsync(db, "SELECT 1 FROM suppressions WHERE email = $1 AND reason = 'hard_bounce'", email));
        Assert.Equal("bounced", (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().Status);
        Assert.Equal(["applied"], (await QueryAsync(db, "SELECT outcome FROM email_events")).Single());
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT attempts FROM member_center_reports WHERE completed_at IS NULL AND last_error IS NOT NULL")).Count == 1);
        // Visible to monitoring: the queue is sampled (every 5 s) and the failed attempt counted.
        var onePending = PendingReports(1);
        await WaitUntilAsync(async () => onePending.IsMatch(await StackFixture.MetricsAsync(se)));
        await StackFixture.WaitForMetricsAsync(se, "sendengine_member_center_reports_total\\{[^}]*kind=\"hard_bounce\"[^}]*outcome=\"retried\"");
        using var internalClient = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        async Task<IReadOnlyList<string>> NotSendableAsync() => (await StackFixture.PostAsync<SubscriptionStatusResult>(internalClient,
            $"internal/lists/{tenant.ListId}/not-sendable", new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, [email]))).NotSendable;
        Assert.Empty(await NotSendableAsync());

        gate.FailReports = false;
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT outcome FROM member_center_reports WHERE completed_at IS NOT NULL")).Count == 1);
        Assert.Equal(["sent"], (await QueryAsync(db, "SELECT outcome FROM member_center_reports")).Single());
        Assert.Equal([email], await NotSendableAsync());
        await StackFixture.WaitForMetricsAsync(se, "sendengine_member_center_reports_total\\{[^}]*kind=\"hard_bounce\"[^}]*outcome=\"sent\"[^}]*\\} 1\\b");
    }

    [Fact]
    public async Task A_hard_bounce_reported_while_Member_Center_is_stopped_is_delivered_after_it_starts_again()
    {
        // The 503 test above covers a Member Center that answers and refuses; here none answers at all (connection refused).
        var tenant = await stack.CreateTenantAsync();
        var email = $"stopped@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var mc = await RestartableMemberCenter.StartAsync(stack);
        await using var engine = stack.CreateSendEngine(db, mc.SendEngineSettings(stack, db, Settings(null)));
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await mc.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Stopped", null, "Hi", null), StackFixture.Json);
        var jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed);
        var messageId = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().MessageId!;

        await mc.StopAsync();
        await PostSignedAsync(engine.CreateClient(), Json(new { eventType = "bounce", messageId, email, timestamp = DateTimeOffset.UtcNow.ToString("O"), bounceType = "Permanent" }));
        await WaitProcessedAsync(db);

        // Send Engine's own effects are in; the report waits, its failed attempt recorded (refused, not answered).
        Assert.Single(await QueryAsync(db, "SELECT 1 FROM suppressions WHERE email = $1 AND reason = 'hard_bounce'", email));
        Assert.Equal("bounced", (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients", StackFixture.Json))!.Items.Single().Status);
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT attempts FROM member_center_reports WHERE completed_at IS NULL AND last_error IS NOT NULL")).Count == 1);
        using var internalClient = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        async Task<IReadOnlyList<string>> NotSendableAsync() => (await StackFixture.PostAsync<SubscriptionStatusResult>(internalClient,
            $"internal/lists/{tenant.ListId}/not-sendable", new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, [email]))).NotSendable;
        Assert.Empty(await NotSendableAsync());

        await mc.StartAsync();
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT outcome FROM member_center_reports WHERE completed_at IS NOT NULL")).Count == 1);
        Assert.Equal(["sent"], (await QueryAsync(db, "SELECT outcome FROM member_center_reports")).Single());
        Assert.Equal([email], await NotSendableAsync());
    }

    /// <summary>The pending-reports gauge line with exactly <paramref name="count"/> as its value.</summary>
    private static Regex PendingReports(int count) => new($@"(?m)^sendengine_member_center_reports_pending(\{{[^}}]*\}})? {count}(\s|$)");

    [Fact]
    public async Task Each_host_exports_only_its_own_metrics_when_several_share_a_process()
    {
        // OpenTelemetry picks meters by name process-wide; the tests run several engines at once, as could an embedder.
        await using var first = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), Settings(null));
        await using var second = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), Settings(null, new() { ["EmailEvents:ProcessorEnabled"] = "false" }));
        using var firstClient = first.CreateClient();
        using var secondClient = second.CreateClient();
        second.Services.GetRequiredService<SendEngineMetrics>().PendingMemberCenterReports(7);
        second.Services.GetRequiredService<SendEngineMetrics>().Rejected("only_in_second");

        var firstMetrics = await StackFixture.MetricsAsync(firstClient);
        var secondMetrics = await StackFixture.MetricsAsync(secondClient);

        Assert.Matches(PendingReports(7), secondMetrics);
        Assert.Contains("reason=\"only_in_second\"", secondMetrics);
        Assert.DoesNotMatch(PendingReports(7), firstMetrics);
        Assert.DoesNotContain("only_in_second", firstMetrics);
    }

    [Fact]
    public async Task Requests_waiting_for_the_store_when_the_writer_stops_are_answered_503_not_500()
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new()
        {
            ["EmailEvents:ProcessorEnabled"] = "false",
            // Only the writer's stop may end the wait below, however slow the machine.
            ["TencentSes:Webhook:AnswerDeadline"] = "00:01:00",
        }));
        using var hook = engine.CreateClient(); // started: the tables exist

        await using (var stall = await StallEventInsertsAsync(db))
        {
            var waiting = SendAsync(hook, Json(new { @event = "open", email = "a@example.com", bulkId = "b-1", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() }));
            await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO email_events%'")).Count > 0);
            // Shutdown as the host does it: the writer stops while that request's INSERT waits.
            await engine.Services.GetRequiredService<EmailEventWriter>().StopAsync(CancellationToken.None);
            using var stopped = await waiting;
            Assert.Equal(TimeSpan.FromSeconds(5), stopped.Headers.RetryAfter?.Delta);
            Assert.Equal("Shutting down", (await AssertProblemAsync(stopped, 503)).GetProperty("title").GetString());
            // One that arrives after the writer stopped is refused at once instead of waiting for ever.
            await AssertProblemAsync(await SendAsync(hook, Json(new { @event = "open", email = "a@example.com", bulkId = "b-2", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() })), 503);
        }
        // The stopped INSERT was cancelled: nothing stored, which the 503 said.
        Assert.Equal(0L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);
    }

    [Fact]
    public async Task A_stalled_store_is_answered_503_within_the_deadline_and_the_late_commit_makes_the_retry_a_duplicate()
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Settings(null, new()
        {
            ["EmailEvents:ProcessorEnabled"] = "false",
            // Short enough for a quick test, long enough for the unstalled retry below on a loaded machine.
            ["TencentSes:Webhook:AnswerDeadline"] = "00:00:02",
        }));
        using var hook = engine.CreateClient(); // started: the tables exist
        var body = Json(new { @event = "open", email = "a@example.com", bulkId = "b-1", timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() });

        await using (var stall = await StallEventInsertsAsync(db))
        {
            var sw = Stopwatch.StartNew();
            using var slow = await SendAsync(hook, body);
            // Bounded by the deadline, not by the stall (which lasts until the lock is released below).
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"answered after {sw.Elapsed}");
            Assert.Equal(TimeSpan.FromSeconds(5), slow.Headers.RetryAfter?.Delta);
            Assert.Equal("Event store too slow", (await AssertProblemAsync(slow, 503)).GetProperty("title").GetString());
        }
        // The queued insert commits after the 503; Tencent's retry of the same callback is then a duplicate, stored once.
        await WaitUntilAsync(async () => (long)(await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0] == 1);
        Assert.Equal(1, (await PostSignedAsync(hook, body)).GetProperty("duplicates").GetInt32());
        Assert.Equal(1L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);
    }

    /// <summary>Holds a lock that makes the webhook's INSERT wait (a stalled database) until disposed.</summary>
    private static async Task<IAsyncDisposable> StallEventInsertsAsync(string db)
    {
        var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        var tx = await conn.BeginTransactionAsync();
        await using (var cmd = new NpgsqlCommand("LOCK TABLE email_events IN EXCLUSIVE MODE", conn, tx))
        {
            await cmd.ExecuteNonQueryAsync();
        }
        return new Stall(conn, tx);
    }

    private sealed class Stall(NpgsqlConnection conn, NpgsqlTransaction tx) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await tx.RollbackAsync();
            await conn.DisposeAsync();
        }
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(30), () => "timed out", TimeSpan.FromMilliseconds(100));

    private Dictionary<string, string?> Settings(TencentSesStandIn? ses, Dictionary<string, string?>? extra = null)
    {
        var s = TencentWebhookSigning.Settings(SigningKey, new Dictionary<string, string?>
        {
            ["EmailEvents:RetryBaseDelay"] = "00:00:00.200",
            ["EmailEvents:SoftBounceThreshold"] = "3",
        });
        if (ses is not null)
        {
            s["TencentSes:SecretId"] = "AKIDtest";
            s["TencentSes:SecretKey"] = SecretKey;
            s["TencentSes:Endpoint"] = ses.Url;
            s["TencentSes:HttpRetryBaseDelay"] = "00:00:00.010";
        }
        foreach (var (k, v) in extra ?? [])
        {
            s[k] = v;
        }
        return s;
    }

    private static string Json(object o) => JsonSerializer.Serialize(o);

    private static async Task<HttpResponseMessage> SendAsync(HttpClient hook, string body, string key = SigningKey, long? timestamp = null, string? signature = null)
    {
        using var request = TencentWebhookSigning.Request(body, key, timestamp, signature);
        return await hook.SendAsync(request);
    }

    private static async Task<JsonElement> PostSignedAsync(HttpClient hook, string body)
    {
        using var response = await SendAsync(hook, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"webhook answered {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, int status)
    {
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            return JsonDocument.Parse(text).RootElement.Clone();
        }
    }

    private static async Task WaitProcessedAsync(string db)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            var left = (long)(await QueryAsync(db, "SELECT count(*) FROM email_events WHERE processed_at IS NULL")).Single()[0];
            if (left == 0)
            {
                return;
            }
            await Task.Delay(200);
        }
        var rows = await QueryAsync(db, "SELECT id, event_type, attempts, coalesce(last_error, ''), coalesce(outcome, '') FROM email_events");
        throw new TimeoutException("email events were not processed within 90 s: " + string.Join("; ", rows.Select(r => string.Join(",", r))));
    }
}
