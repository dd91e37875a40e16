using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;
using Serilog.Core;
using Serilog.Events;
using static SendEngine.Tests.TestDatabase;

namespace SendEngine.Tests;

/// <summary>
/// Issue 11, parts 1 and 3: ESP events act only on their own recipients, the webhook is never open by accident, and an
/// unsubscribe or complaint is never lost (Send Engine skips the address itself until Member Center acknowledges it,
/// and a one-click unsubscribe reaches every later batch of a running job).
/// </summary>
public sealed class EventSafetyTests(StackFixture stack)
{
    private const string SigningKey = "event-safety-signing-key-0123456789";

    [Fact]
    public async Task An_event_acts_only_on_a_recipient_of_its_message_with_its_own_address()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        // An internationalised domain: Member Center stores it in punycode, the ESP may report it in Unicode and capitals.
        var idnDomain = $"bücher-{Guid.NewGuid():N}"[..16] + ".example";
        var reader = $"reader@{domain}";
        var victim = $"victim@{domain}";
        var idn = $"Idn@{idnDomain}";
        await stack.SubscribeAsync(tenant, [reader, victim, idn]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, Signed());
        using var se = await ClientAsync(engine, tenant);
        var jobId = await RunJobAsync(se, tenant, "Mismatch");
        var recipients = await RecipientsAsync(se, jobId);
        var readerMessage = recipients.Single(r => r.Email == reader).MessageId!;
        var idnRecipient = recipients.Single(r => r.Email.StartsWith("Idn@xn--", StringComparison.Ordinal));

        // Signed correctly, naming the reader's message and another subscriber's address: stored, applied to nobody.
        using var hook = engine.CreateClient();
        await PostSignedAsync(hook, Json(new { eventType = "complaint", messageId = readerMessage, email = victim, timestamp = Now() }));
        await PostSignedAsync(hook, Json(new { @event = "unsubscribe", bulkId = readerMessage, email = victim.ToUpperInvariant(), timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() }));
        // The IDN reader's own complaint, spelt in Unicode and capitals: it is theirs, so it applies.
        await PostSignedAsync(hook, Json(new { eventType = "complaint", messageId = idnRecipient.MessageId, email = "IDN@" + idnDomain.ToUpperInvariant(), timestamp = Now() }));
        await WaitProcessedAsync(db);

        var outcomes = await QueryAsync(db, "SELECT email, outcome, tenant_id IS NULL, job_id IS NULL FROM email_events ORDER BY id");
        Assert.Equal([victim, "recipient_mismatch", true, true], outcomes[0]);
        Assert.Equal([victim, "recipient_mismatch", true, true], outcomes[1]);
        Assert.Equal("applied", outcomes[2][1]);
        var idnKey = idnRecipient.Email.ToLowerInvariant();
        Assert.Equal(idnKey, outcomes[2][0]);
        // Nothing of the victim's changed, in Send Engine or in Member Center; the IDN reader is suppressed and reported.
        Assert.Equal(new object[] { idnKey, "complaint" }, Assert.Single(await QueryAsync(db, "SELECT email, reason FROM suppressions")));
        Assert.Equal(new object[] { idnKey, "complaint" }, Assert.Single(await QueryAsync(db, "SELECT email, reason FROM member_center_reports")));
        await WaitUntilAsync(async () => (long)(await QueryAsync(db, "SELECT count(*) FROM member_center_reports WHERE completed_at IS NULL")).Single()[0] == 0);
        Assert.Equal([idnRecipient.Email], await NotSendableAsync(tenant, [reader, victim, idnRecipient.Email]));
        var job = (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{jobId}", StackFixture.Json))!;
        Assert.Equal(1, job.Events!.Complained);
        Assert.Equal(0, job.Events.Unsubscribed);
        // Counted for monitoring (deploy/prometheus/sendengine-alerts.yml, EmailEventsRecipientMismatch).
        await StackFixture.WaitForMetricsAsync(hook, "(?m)^sendengine_email_events_processed_total\\{[^}]*outcome=\"recipient_mismatch\"[^}]*\\} 1\\b", 2);
    }

    [Fact]
    public async Task Without_verification_Send_Engine_starts_only_when_unauthenticated_callbacks_are_explicitly_allowed()
    {
        // Development, as docker-compose runs it: None is no longer enough.
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using (var refused = stack.CreateSendEngine(db, new Dictionary<string, string?> { ["TencentSes:Webhook:AllowUnauthenticated"] = "false" }))
        {
            var error = Assert.ThrowsAny<Exception>(() => refused.Server);
            Assert.Contains("TencentSes:Webhook:AllowUnauthenticated=true", error.ToString(), StringComparison.Ordinal);
        }
        await using (var staging = stack.CreateSendEngine(db, new Dictionary<string, string?> { ["environment"] = "Staging", ["TencentSes:Webhook:AllowUnauthenticated"] = "false" }))
        {
            var error = Assert.ThrowsAny<Exception>(() => staging.Server);
            Assert.Contains("TencentSes:Webhook:AllowUnauthenticated=true", error.ToString(), StringComparison.Ordinal);
        }

        // Explicitly allowed (the fixture's default): an unsigned callback is taken.
        await using var open = stack.CreateSendEngine(db, new Dictionary<string, string?> { ["EmailEvents:ProcessorEnabled"] = "false" });
        using var hook = open.CreateClient();
        using var unsigned = await hook.PostAsync("api/tencent/ses/webhook",
            new StringContent(Json(new { @event = "open", email = "a@example.com", bulkId = "b-1", timestamp = 1654064683 }), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, unsigned.StatusCode);
    }

    [Fact]
    public async Task Token_mode_takes_the_secret_as_basic_auth_and_logs_the_query_with_the_token_redacted()
    {
        const string secret = "basic-auth-secret-0123456789";
        var db = await stack.CreateSendEngineDatabaseAsync();
        var logs = new KeepingSink();
        await using var factory = stack.CreateSendEngine(db, new Dictionary<string, string?>
        {
            ["TencentSes:Webhook:Verification"] = "Token",
            ["TencentSes:Webhook:SecretToken"] = secret,
            ["TencentSes:Webhook:AllowUnauthenticated"] = "false",
            ["EmailEvents:ProcessorEnabled"] = "false",
        });
        await using var engine = factory.WithWebHostBuilder(b => b.ConfigureServices(s => s.AddSingleton<ILogEventSink>(logs)));
        using var hook = engine.CreateClient();
        StringContent Body(int n) => new(Json(new { @event = "open", email = "a@example.com", bulkId = "b", timestamp = 1654064683 + n }), Encoding.UTF8, "application/json");
        async Task<HttpStatusCode> BasicAsync(string user, string password, int n)
        {
            // What an HTTP client sends for a callback URL http://user:password@host/… (Tencent's has no header to set).
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/tencent/ses/webhook") { Content = Body(n) };
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
            using var response = await hook.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await BasicAsync("tencent", secret, 1));
        Assert.Equal(HttpStatusCode.Unauthorized, await BasicAsync("tencent", secret + "x", 2));
        Assert.Equal(HttpStatusCode.Unauthorized, await BasicAsync(secret, "", 3));
        using (var query = await hook.PostAsync($"api/tencent/ses/webhook?source=tencent&token={secret}", Body(4)))
        {
            Assert.Equal(HttpStatusCode.OK, query.StatusCode);
        }
        using (var wrong = await hook.PostAsync("api/tencent/ses/webhook?token=not-the-secret", Body(5)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }
        Assert.Equal(2L, (await QueryAsync(db, "SELECT count(*) FROM email_events")).Single()[0]);

        // The request log shows the webhook's query (Tencent's callback URL is typed in by hand), never the token.
        var logged = logs.Text();
        Assert.Matches("/api/tencent/ses/webhook\\?source=tencent&token=REDACTED\"? responded 200", logged);
        Assert.Matches("/api/tencent/ses/webhook\\?token=REDACTED\"? responded 401", logged);
        Assert.DoesNotContain(secret, logged, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-secret", logged, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unsubscribe_or_complaint_Member_Center_has_not_acknowledged_is_skipped_by_later_jobs_and_retried_until_it_is()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var leaver = $"leaver@{domain}";
        var complainer = $"complainer@{domain}";
        var stayer = $"stayer@{domain}";
        await stack.SubscribeAsync(tenant, [leaver, complainer, stayer]);
        var db = await stack.CreateSendEngineDatabaseAsync();
        // Member Center answers everything but the reports (503), for longer than EmailEvents:MaxAttempts would allow.
        await using var gate = new GatedMemberCenter(stack.MemberCenterUrl) { FailReports = true };
        gate.Open();
        await using var engine = stack.CreateSendEngine(db, Signed(new()
        {
            ["MemberCenter:BaseUrl"] = gate.Url,
            ["EmailEvents:MaxAttempts"] = "2",
        }));
        using var se = await ClientAsync(engine, tenant);
        var first = await RunJobAsync(se, tenant, "Before the outage");
        var sent = (await RecipientsAsync(se, first)).ToDictionary(r => r.Email, r => r.MessageId!);

        using var hook = engine.CreateClient();
        await PostSignedAsync(hook, Json(new { eventType = "unsubscribe", messageId = sent[leaver], email = leaver, timestamp = Now() }));
        await PostSignedAsync(hook, Json(new { eventType = "complaint", messageId = sent[complainer], email = complainer, timestamp = Now() }));
        await WaitProcessedAsync(db);
        // Retried past MaxAttempts (2), never given up.
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT 1 FROM member_center_reports WHERE attempts >= 4 AND completed_at IS NULL")).Count == 2);
        Assert.Empty(await QueryAsync(db, "SELECT 1 FROM member_center_reports WHERE completed_at IS NOT NULL"));
        // Both gauges come from one sample (every 5 s): two pending, the oldest of some age.
        var twoPending = new Regex("(?m)^sendengine_member_center_reports_pending(\\{[^}]*\\})? 2(\\s|$)");
        var sample = "";
        await WaitUntilAsync(async () => twoPending.IsMatch(sample = await StackFixture.MetricsAsync(hook)));
        Assert.Matches(PendingAge(), sample);
        // The alert rules watch the metric names the service exports.
        var rules = await File.ReadAllTextAsync(Path.Combine(Newsletter.TestSupport.RepoPaths.Root, "deploy", "prometheus", "sendengine-alerts.yml"));
        Assert.Contains("sendengine_member_center_reports_pending_age_seconds > 900", rules, StringComparison.Ordinal);

        // Member Center still lists both (it never heard); the tenant even lifts the complaint's suppression. A new job
        // skips them all the same, and mails the reader who stayed.
        Assert.Empty(await NotSendableAsync(tenant, [leaver, complainer, stayer]));
        using (var lifted = await se.DeleteAsync($"api/suppressions/{Uri.EscapeDataString(complainer)}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
        }
        var second = await RunJobAsync(se, tenant, "During the outage");
        var skipped = (await RecipientsAsync(se, second)).ToDictionary(r => r.Email);
        Assert.Equal("sent", skipped[stayer].Status);
        Assert.Equal("suppressed", skipped[leaver].Status);
        Assert.Contains("unsubscribe received, not yet acknowledged by Member Center", skipped[leaver].Detail, StringComparison.Ordinal);
        Assert.Equal("suppressed", skipped[complainer].Status);
        Assert.Contains("complaint received, not yet acknowledged by Member Center", skipped[complainer].Detail, StringComparison.Ordinal);
        await stack.Mail.WaitForMailAsync(m => m.Subject == "During the outage" && m.To.Contains(stayer), TimeSpan.FromSeconds(30));
        Assert.DoesNotContain(await stack.Mail.ListAsync(), m => m.Subject == "During the outage" && (m.To.Contains(leaver) || m.To.Contains(complainer)));

        // Member Center is back: both reports are delivered and it stops listing them.
        gate.FailReports = false;
        await WaitUntilAsync(async () => (await QueryAsync(db, "SELECT 1 FROM member_center_reports WHERE outcome = 'sent'")).Count == 2);
        Assert.Equal(new[] { complainer, leaver }, (await NotSendableAsync(tenant, [leaver, complainer, stayer])).Order());
        await WaitUntilAsync(async () => Regex.IsMatch(await StackFixture.MetricsAsync(hook), "(?m)^sendengine_member_center_reports_pending_age_seconds(\\{[^}]*\\})? 0(\\s|$)"));
    }

    [Fact]
    public async Task After_a_one_click_unsubscribe_during_a_running_job_no_later_batch_mails_the_reader()
    {
        // Slow enough to act between batches: two recipients per batch, one connection, one message per group, 2/s.
        const int batchSize = 2, concurrency = 1, groupSize = 1;
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(24, "oneclick");
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, new Dictionary<string, string?>
        {
            ["Delivery:MessagesPerSecond"] = "2",
            ["Delivery:Concurrency"] = concurrency.ToString(CultureInfo.InvariantCulture),
            ["Delivery:GroupSize"] = groupSize.ToString(CultureInfo.InvariantCulture),
            ["SendJobs:BatchSize"] = batchSize.ToString(CultureInfo.InvariantCulture),
        });
        using var se = await ClientAsync(engine, tenant);
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "One-click", null, "Hi", null), StackFixture.Json);
        var jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, jobId, j => j.Counts.Sent >= 3);

        // Every reader not yet sent to unsubscribes by RFC 8058 one-click, in the order the runner reads them.
        var waiting = (await QueryAsync(db, "SELECT email FROM send_job_recipients WHERE status = 'pending' ORDER BY id"))
            .Select(r => (string)r[0]).ToList();
        Assert.True(waiting.Count >= 12, $"only {waiting.Count} left to unsubscribe");
        var unsubscribedAt = new Dictionary<string, DateTimeOffset>();
        using (var mc = new HttpClient { BaseAddress = new Uri(stack.MemberCenterUrl + "/") })
        {
            mc.DefaultRequestHeaders.Authorization = new("Bearer", await stack.TokenAsync(tenant.TenantClientId, tenant.TenantClientSecret, Scopes.SubscriptionsWrite));
            var tokens = new ConcurrentDictionary<string, string>();
            await Parallel.ForEachAsync(waiting, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (email, _) =>
                tokens[email] = (await StackFixture.PostAsync<UnsubscribeTokenResponse>(mc, "newsletter/unsubscribe-token",
                    new UnsubscribeTokenRequest(tenant.ListId, email))).UnsubscribeToken);
            // Four at a time: the one-clicks outrun the runner's reads (2/s), so only readers already read are late.
            var at = new ConcurrentDictionary<string, DateTimeOffset>();
            await Parallel.ForEachAsync(waiting, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (email, ct) =>
            {
                using var oneClick = await mc.PostAsync($"newsletter/unsubscribe?token={Uri.EscapeDataString(tokens[email])}",
                    new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }), ct);
                Assert.True(oneClick.IsSuccessStatusCode, $"one-click for {email}: {(int)oneClick.StatusCode}");
                at[email] = DateTimeOffset.UtcNow;
            });
            foreach (var (email, time) in at)
            {
                unsubscribedAt[email] = time;
            }
        }

        // What the runner had read (and so checked, or is about to check) by the time the last one-click returned: the
        // rows up to the job's claim cursor. Every row still pending beyond it belongs to a later batch.
        var pendingAfter = (await QueryAsync(db, """
            SELECT r.email FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id WHERE r.status = 'pending' AND r.id > j.claim_cursor
            """))
            .Select(r => (string)r[0]).ToHashSet(StringComparer.Ordinal);

        var done = await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed);
        // Mailed after their one-click: only readers whose batch had been read and checked before it, at most what the
        // runner holds ahead of the send (docs/send-engine.md): the channel (a batch), the claimer's next batch, and the
        // workers' groups.
        var late = (await QueryAsync(db, "SELECT email, sent_at FROM send_job_recipients WHERE status = 'sent' AND email = ANY($1)", (object)waiting.ToArray()))
            .Select(r => (Email: (string)r[0], Delay: new DateTimeOffset((DateTime)r[1], TimeSpan.Zero) - unsubscribedAt[(string)r[0]]))
            .Where(r => r.Delay > TimeSpan.Zero)
            .ToList();
        // No later batch mails a reader who left: those mailed after their one-click had been read before it.
        Assert.All(late, l => Assert.DoesNotContain(l.Email, pendingAfter));
        var bound = 2 * batchSize + concurrency * groupSize;
        // Everyone else who was still waiting was skipped, and maildev got nothing for them.
        var skipped = (await QueryAsync(db, "SELECT email FROM send_job_recipients WHERE status = 'suppressed'")).Select(r => (string)r[0]).ToList();
        var sentToWaiting = (await QueryAsync(db, "SELECT 1 FROM send_job_recipients WHERE status = 'sent' AND email = ANY($1)", (object)waiting.ToArray())).Count;
        Assert.Equal(waiting.Count - sentToWaiting, skipped.Count);
        Assert.Equal(skipped.Count, done.Counts.Suppressed);
        // The test means something only if most were still to come when they left.
        Assert.True(skipped.Count >= waiting.Count / 2, $"only {skipped.Count} of {waiting.Count} skipped");
        var mailed = (await stack.Mail.ListAsync()).Where(m => m.Subject == "One-click").SelectMany(m => m.To).ToHashSet(StringComparer.Ordinal);
        Assert.DoesNotContain(skipped, mailed.Contains);
        // The figure docs/send-engine.md records ("Unsubscribes take effect at once"), in the test's output.
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"one-click -> last message: {waiting.Count} readers unsubscribed, {late.Count} mailed after unsubscribing, worst {(late.Count == 0 ? TimeSpan.Zero : late.Max(l => l.Delay)).TotalMilliseconds:0} ms (bound {bound} messages at 2/s)");
    }

    private static Dictionary<string, string?> Signed(Dictionary<string, string?>? extra = null)
    {
        var s = TencentWebhookSigning.Settings(SigningKey, new Dictionary<string, string?> { ["EmailEvents:RetryBaseDelay"] = "00:00:00.200" });
        foreach (var (k, v) in extra ?? [])
        {
            s[k] = v;
        }
        return s;
    }

    private async Task<HttpClient> ClientAsync(SendEngineFactory engine, TestTenant tenant)
    {
        var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        return se;
    }

    private static async Task<string> RunJobAsync(HttpClient se, TestTenant tenant, string subject)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "Hi", null), StackFixture.Json);
        var id = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, id, j => j.Status == SendJobStatuses.Completed);
        return id;
    }

    private static async Task<IReadOnlyList<SendJobRecipientResponse>> RecipientsAsync(HttpClient se, string jobId) =>
        (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=100", StackFixture.Json))!.Items;

    private async Task<IReadOnlyList<string>> NotSendableAsync(TestTenant tenant, IReadOnlyList<string> emails)
    {
        using var client = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        return (await StackFixture.PostAsync<SubscriptionStatusResult>(client, $"internal/lists/{tenant.ListId}/not-sendable",
            new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, emails))).NotSendable;
    }

    /// <summary>The pending-age gauge with a value above zero.</summary>
    private static Regex PendingAge() => new(@"(?m)^sendengine_member_center_reports_pending_age_seconds(\{[^}]*\})? (0\.0*[1-9]|[1-9])");

    private static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private static string Json(object o) => JsonSerializer.Serialize(o);

    private static async Task PostSignedAsync(HttpClient hook, string body)
    {
        using var request = TencentWebhookSigning.Request(body, SigningKey);
        using var response = await hook.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"webhook answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    private static Task WaitProcessedAsync(string db) =>
        WaitUntilAsync(async () => (long)(await QueryAsync(db, "SELECT count(*) FROM email_events WHERE processed_at IS NULL")).Single()[0] == 0);

    private static Task WaitUntilAsync(Func<Task<bool>> condition) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(60), () => "timed out\n" + ServiceLogs.Dump(), TimeSpan.FromMilliseconds(100));

    /// <summary>Every event of one host, rendered, with its properties.</summary>
    private sealed class KeepingSink : ILogEventSink
    {
        private readonly ConcurrentQueue<string> _events = new();

        public void Emit(LogEvent logEvent) => _events.Enqueue(string.Create(CultureInfo.InvariantCulture,
            $"{logEvent.RenderMessage(CultureInfo.InvariantCulture)} {string.Join(' ', logEvent.Properties.Select(p => $"{p.Key}={p.Value}"))}"));

        public string Text() => string.Join('\n', _events);
    }
}
