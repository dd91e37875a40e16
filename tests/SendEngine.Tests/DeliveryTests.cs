using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Newsletter.Contracts;

namespace SendEngine.Tests;

public sealed class DeliveryTests(StackFixture stack)
{
    [Fact]
    public async Task Job_is_delivered_with_merge_tags_unsubscribe_headers_and_message_ids()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, 3).Select(i => $"reader{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails, e => new Dictionary<string, JsonElement>
        {
            ["name"] = JsonSerializer.SerializeToElement(e.StartsWith("reader1", StringComparison.Ordinal) ? "<Ann & Co>" : "Bob"),
        });
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(
            tenant.TenantId, tenant.ListId, "Weekly", "Hello {{ name }}",
            "<p>Hi {{ name }} ({{ email }})</p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a>",
            "Hi {{name}} ({{ email }}) - unsubscribe: {{ unsubscribe_url }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        Assert.Equal($"/api/send-jobs/{job.Id}", created.Headers.Location?.OriginalString);
        Assert.Equal("Weekly", job.Name);

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(new SendJobCounts(3, 3, 0, 0, 0, 0, 0), done.Counts);
        Assert.NotNull(done.StartedAt);
        Assert.NotNull(done.FinishedAt);

        var page = await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?status=sent", StackFixture.Json);
        Assert.Equal(3, page!.Items.Count);
        Assert.All(page.Items, r => Assert.False(string.IsNullOrEmpty(r.MessageId)));

        var ann = await stack.Mail.WaitForMailAsync(m => m.To.Contains(emails[0]) && m.Subject.StartsWith("Hello", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Equal("Hello <Ann & Co>", ann.Subject);
        Assert.Contains("Hi &lt;Ann &amp; Co&gt; (" + emails[0] + ")", ann.Html);
        Assert.Contains("Hi <Ann & Co> (" + emails[0] + ")", ann.Text);
        var source = await stack.Mail.GetSourceAsync(ann.Id);
        var unfolded = source.Replace("\r\n ", " ").Replace("\r\n\t", " ");
        Assert.Matches(@"(?m)^List-Unsubscribe: <http://127\.0\.0\.1:\d+/newsletter/unsubscribe\?token=[^>]+>", unfolded);
        Assert.Contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click", unfolded);
        Assert.Contains("multipart/alternative", unfolded);
        var annRow = page.Items.Single(r => r.Email == emails[0]);
        Assert.Contains($"Message-ID: <{annRow.MessageId}>", unfolded, StringComparison.OrdinalIgnoreCase);
        // The unsubscribe link in the body is the same per-recipient URL as the header.
        var headerUrl = System.Text.RegularExpressions.Regex.Match(unfolded, @"List-Unsubscribe: <([^>]+)>").Groups[1].Value;
        Assert.Contains(headerUrl, ann.Text);

        var bob = await stack.Mail.WaitForMailAsync(m => m.To.Contains(emails[1]) && m.Subject.StartsWith("Hello", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Equal("Hello Bob", bob.Subject);
        var all = await stack.Mail.ListAsync();
        Assert.Equal(3, all.Count(m => m.To.Any(t => t.EndsWith(domain, StringComparison.Ordinal)) && m.Subject.StartsWith("Hello", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Delivery_starts_with_the_first_snapshot_page_while_later_pages_are_still_being_read()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, 3).Select(i => $"early{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        await using var gate = new GatedMemberCenter(stack.MemberCenterUrl);
        await using var gated = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["MemberCenter:BaseUrl"] = gate.Url,
            ["MemberCenter:PageSize"] = "1",
        });
        using var se = gated.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Early", null, "hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        // Page 1 is in and page 2 is held at the gate: the first recipient is mailed anyway, and the job is not done.
        var early = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Counts.Sent == 1);
        Assert.Equal(SendJobStatuses.Sending, early.Status);
        Assert.Equal(1, early.Counts.Total);
        Assert.NotNull(early.StartedAt);
        Assert.True(gate.Held > 0, "the second page should be waiting at the gate");
        Assert.Equal(SendJobStatuses.Sending, (await se.GetFromJsonAsync<SendJobResponse>($"api/send-jobs/{job.Id}", StackFixture.Json))!.Status);

        gate.Open();
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(3, done.Counts.Total);
        Assert.Equal(3, done.Counts.Sent);
        foreach (var email in emails)
        {
            await stack.Mail.WaitForMailAsync(m => m.To.Contains(email) && m.Subject == "Early", TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task A_job_completes_when_its_last_results_are_recorded_not_a_poll_interval_later()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        await stack.SubscribeAsync(tenant, Enumerable.Range(1, 5).Select(i => $"last{i}@{domain}").ToList());
        // The longest poll the options allow: the claimer, having handed out every row, must learn from the workers that
        // the last ones are recorded, not from its next poll.
        await using var engine = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["SendJobs:PollInterval"] = "00:01:00",
        });
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Last", null, "hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(50));
        Assert.Equal(5, done.Counts.Sent);
        var took = done.FinishedAt!.Value - done.StartedAt!.Value;
        Assert.True(took < TimeSpan.FromSeconds(30), $"the job took {took} from its start to completion, a poll interval (60 s) would be the cause");
    }

    [Fact]
    public async Task A_connection_marks_its_next_rows_while_it_sends_the_last_of_a_group_and_never_holds_more_than_a_group()
    {
        // One connection, groups of 4, a real relay that answers each end of DATA after 150 ms: while the first group's
        // last message waits for its reply, the next rows' 'sending' mark is already committed (the commit no longer
        // stalls the connection), and the rows in 'sending' (the crash bound) never exceed a group.
        const int groupSize = 4;
        await using var relay = await Newsletter.TestSupport.FaultSmtpServer.StartAsync("--data-delay", "0.15");
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, 12).Select(i => $"ahead{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        var database = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(database, new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Delivery:Concurrency"] = "1",
            ["Delivery:GroupSize"] = groupSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Ahead", null, "hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        await using var conn = new Npgsql.NpgsqlConnection(database);
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        var seen = new List<long[]>();
        long[] rows = [];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (rows.Length < emails.Count && DateTime.UtcNow < deadline)
        {
            await using var read = new Npgsql.NpgsqlCommand("""
                SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE status = 'sending'), '{}'),
                       coalesce(array_agg(id ORDER BY id) FILTER (WHERE status = 'sent'), '{}')
                FROM send_job_recipients WHERE job_id = $1
                """, conn);
            read.Parameters.AddWithValue(Guid.Parse(job.Id));
            await using var reader = await read.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            await reader.ReadAsync(TestContext.Current.CancellationToken);
            seen.Add(reader.GetFieldValue<long[]>(0));
            rows = reader.GetFieldValue<long[]>(1);
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Equal(emails.Count, rows.Length);
        Assert.Equal(emails.Order(), relay.Accepted.Select(a => a.Recipient).Order());
        Assert.All(seen, sending => Assert.InRange(sending.Length, 0, groupSize));
        // The first group's last row and the second group's first, both 'sending' at once: without the mark ahead the
        // second group's mark commits with the first group's results, so the two never are.
        Assert.Contains(seen, sending => sending.Contains(rows[groupSize - 1]) && sending.Contains(rows[groupSize]));
    }

    [Fact]
    public async Task Messages_are_dkim_signed_when_a_key_is_configured()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"signed@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        await using var signing = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Dkim:Domain"] = "sender.example",
            ["Dkim:Selector"] = "news",
            ["Dkim:PrivateKey"] = rsa.ExportRSAPrivateKeyPem(),
        });
        using var se = signing.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var subject = "Signed " + Guid.NewGuid().ToString("N")[..8];
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject,
            "<p>Hi {{ email }}</p>", "Hi {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);

        var mail = await stack.Mail.WaitForMailAsync(m => m.To.Contains(email) && m.Subject == subject, TimeSpan.FromSeconds(30));
        using var source = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(await stack.Mail.GetSourceAsync(mail.Id)));
        var message = await MimeKit.MimeMessage.LoadAsync(source);
        var index = message.Headers.IndexOf(MimeKit.HeaderId.DkimSignature);
        Assert.True(index >= 0, "no DKIM-Signature header");
        var signature = message.Headers[index].Value;
        Assert.Contains("d=sender.example", signature, StringComparison.Ordinal);
        Assert.Contains("s=news", signature, StringComparison.Ordinal);
        // Verified as a receiving MTA would, with the public key the DNS record would publish.
        var verifier = new MimeKit.Cryptography.DkimVerifier(new FixedDkimKey("v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo())));
        Assert.True(await verifier.VerifyAsync(message, message.Headers[index]), "the DKIM signature does not verify");
        // A changed signed header no longer verifies.
        message.Subject += " (changed)";
        Assert.False(await verifier.VerifyAsync(message, message.Headers[index]));
    }

    /// <summary>Answers every DKIM key lookup with one TXT record, standing in for DNS.</summary>
    /// <summary>The mail to <paramref name="to"/> with <paramref name="subject"/> as a real SMTP server received it, and the
    /// unsubscribe link of its List-Unsubscribe header (unfolded).</summary>
    private async Task<(Newsletter.TestSupport.ReceivedMail Mail, string Unsubscribe)> ReceivedWithUnsubscribeLinkAsync(string to, string subject)
    {
        var mail = await stack.Mail.WaitForMailAsync(m => m.To.Contains(to) && m.Subject == subject, TimeSpan.FromSeconds(60));
        var source = (await stack.Mail.GetSourceAsync(mail.Id)).Replace("\r\n ", " ").Replace("\r\n\t", " ");
        return (mail, System.Text.RegularExpressions.Regex.Match(source, @"List-Unsubscribe: <([^>]+)>").Groups[1].Value);
    }

    [Fact]
    public async Task Suppressed_and_unsubscribed_after_snapshot_addresses_are_skipped()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, 8).Select(i => $"r{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        // One message at a time, one every two seconds: the test can act between the snapshot and a recipient's turn.
        // The runner re-checks a row when it claims it, about three rows ahead of the send (worker, channel, blocked
        // writer), so the last of eight is re-checked ~8 s after the first message: time enough under load.
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var slow = stack.CreateSendEngine(db, new Dictionary<string, string?>
        {
            ["Delivery:MessagesPerSecond"] = "0.5",
            ["Delivery:Concurrency"] = "1",
            ["SendJobs:BatchSize"] = "1",
        });
        using var se = slow.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var suppress = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, emails[0].ToUpperInvariant(), "complaint"), StackFixture.Json);
        Assert.Equal(HttpStatusCode.Created, suppress.StatusCode);

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Skip test", null, "Hello {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Counts.Sent >= 1);
        // The last address no batch has read yet, other than the suppressed one: rows read for delivery stay 'pending'
        // until their mark, so only those beyond the job's claim cursor are still to be read (and re-checked).
        string late;
        await using (var conn = new Npgsql.NpgsqlConnection(db))
        {
            await conn.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand("""
                SELECT r.email FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
                WHERE j.id = $1 AND r.status = 'pending' AND r.id > j.claim_cursor AND lower(r.email) <> lower($2)
                ORDER BY r.id DESC LIMIT 1
                """, conn) { Parameters = { new() { Value = Guid.Parse(job.Id) }, new() { Value = emails[0] } } };
            late = (string?)await cmd.ExecuteScalarAsync()
                ?? throw new InvalidOperationException("no recipient left unread: " + await se.GetStringAsync($"api/send-jobs/{job.Id}/recipients"));
        }
        await stack.UnsubscribeAsync(tenant, late);

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        var everyone = await se.GetStringAsync($"api/send-jobs/{job.Id}/recipients");
        Assert.True(done.Counts.Suppressed == 2, $"late={late} suppressed0={emails[0]} {everyone}");
        Assert.Equal(8, done.Counts.Total);
        Assert.Equal(6, done.Counts.Sent);
        var skipped = await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?status=suppressed", StackFixture.Json);
        Assert.Equal(new[] { emails[0], late }.Order(), skipped!.Items.Select(r => r.Email).Order());
        Assert.Contains(skipped.Items, r => r.Email == emails[0] && r.Detail!.Contains("complaint", StringComparison.Ordinal));
        // The snapshot chose a Message-ID for every row, but nothing went out under a skipped row's: the API shows none.
        Assert.All(skipped.Items, r => Assert.Null(r.MessageId));

        foreach (var sent in emails.Except([emails[0], late]))
        {
            await stack.Mail.WaitForMailAsync(m => m.To.Contains(sent) && m.Subject == "Skip test", TimeSpan.FromSeconds(30));
        }
        var mails = await stack.Mail.ListAsync();
        Assert.DoesNotContain(mails, m => m.Subject == "Skip test" && (m.To.Contains(emails[0]) || m.To.Contains(late)));

        using var list = await se.GetAsync("api/suppressions");
        var suppressions = await StackFixture.ReadAsync<SuppressionPage>(list, HttpStatusCode.OK);
        Assert.Equal(emails[0], Assert.Single(suppressions.Items).Email);
        using var removed = await se.DeleteAsync($"api/suppressions/{Uri.EscapeDataString(emails[0])}");
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        using var again = await se.DeleteAsync($"api/suppressions/{Uri.EscapeDataString(emails[0])}");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task Cancel_mid_send_stops_the_job_and_keeps_what_was_sent()
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, 12).Select(i => $"c{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var slow = stack.CreateSendEngine(db, new Dictionary<string, string?>
        {
            ["Delivery:MessagesPerSecond"] = "2",
            ["Delivery:Concurrency"] = "1",
            ["SendJobs:BatchSize"] = "2",
        });
        using var se = slow.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(tenant.TenantId, tenant.ListId, null, "Cancel test", "<p>x</p>", null, null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Counts.Sent >= 1);

        using var cancel = await se.PostAsync($"api/send-jobs/{job.Id}/cancel", null);
        var cancelled = await StackFixture.ReadAsync<SendJobResponse>(cancel, HttpStatusCode.OK);
        Assert.Equal(SendJobStatuses.Cancelled, cancelled.Status);
        Assert.NotNull(cancelled.CancelledAt);

        var final = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Counts.Remaining == 0);
        Assert.Equal(SendJobStatuses.Cancelled, final.Status);
        Assert.Equal(12, final.Counts.Total);
        Assert.True(final.Counts.Sent >= 1 && final.Counts.Sent < 12, $"sent {final.Counts.Sent}");
        Assert.Equal(12, final.Counts.Sent + final.Counts.Cancelled);

        using var again = await se.PostAsync($"api/send-jobs/{job.Id}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("application/problem+json", again.Content.Headers.ContentType?.MediaType);

        // What was counted as sent arrived, and nothing else: the addresses recorded sent are exactly the addresses
        // maildev received this job's message for, once each.
        var sentRows = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?status=sent&limit=100", StackFixture.Json))!.Items;
        var sent = sentRows.Select(r => r.Email).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(final.Counts.Sent, sent.Count);
        foreach (var email in sent)
        {
            await stack.Mail.WaitForMailAsync(m => m.Subject == "Cancel test" && m.To.Contains(email), TimeSpan.FromSeconds(30));
        }
        var afterStop = await StackFixture.WaitForJobAsync(se, job.Id, _ => true);
        Assert.Equal(final.Counts, afterStop.Counts);
        var received = (await stack.Mail.ListAsync())
            .Where(m => m.Subject == "Cancel test")
            .SelectMany(m => m.To)
            .Where(t => t.EndsWith("@" + domain, StringComparison.Ordinal))
            .ToList();
        Assert.Equal(sent.Order(StringComparer.Ordinal), received.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_fresh_Send_Engine_is_ready_only_once_its_warm_up_took_the_token_and_the_signing_keys()
    {
        // StartupWarmUp: the first POST's token validation and list check, and the first snapshot page, find the
        // Member Center token and the signing keys already there, and /health/ready says so.
        var (engine, _) = await stack.StartSendEngineAsync(new Dictionary<string, string?>());
        await using var _e = engine;
        using var client = engine.CreateClient();
        var state = engine.Services.GetRequiredService<SendEngine.Features.WarmUp.WarmUpState>();
        var deadline = DateTimeOffset.UtcNow.AddSeconds(60);
        HttpStatusCode ready;
        while ((ready = await ReadyStatusAsync(client)) != HttpStatusCode.OK && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        // Checked right at the first "ready", without waiting further: readiness implies a finished warm-up.
        Assert.Equal(HttpStatusCode.OK, ready);
        Assert.True(state.IsDone);
        var cache = engine.Services.GetRequiredService<SendEngine.Features.MemberCenter.ServiceTokenCache>();
        Assert.NotNull(cache.Token);
        Assert.False(string.IsNullOrEmpty(cache.Token.Value.Token));
        Assert.True(cache.Token.Value.ExpiresAt > DateTimeOffset.UtcNow);
        Assert.True(engine.Services.GetRequiredService<SendEngine.Extensions.JwksRefresher>().KnownKeyCount > 0);

        // Readiness includes the warm-up check, which is unhealthy until the warm-up is done.
        var registrations = engine.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<HealthCheckServiceOptions>>().Value.Registrations;
        Assert.Contains(registrations, r => r.Name == "warm_up" && r.Tags.Count == 0);
        var check = new SendEngine.Features.WarmUp.WarmUpHealthCheck(new SendEngine.Features.WarmUp.WarmUpState());
        Assert.Equal(HealthStatus.Unhealthy, (await check.CheckHealthAsync(new HealthCheckContext(), TestContext.Current.CancellationToken)).Status);
    }

    private static async Task<HttpStatusCode> ReadyStatusAsync(HttpClient client)
    {
        using var response = await client.GetAsync("health/ready", TestContext.Current.CancellationToken);
        return response.StatusCode;
    }

    [Fact]
    public async Task Scheduled_job_waits_for_its_time_then_runs()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"later@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        // Far enough ahead that a loaded runner still answers the POST before it: the job must start out scheduled.
        var at = DateTimeOffset.UtcNow.AddSeconds(8);
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(tenant.TenantId, tenant.ListId, null, "Scheduled",
            null, "later", at.ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture)), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        Assert.Equal(SendJobStatuses.Scheduled, job.Status);
        Assert.Equal(at.ToUnixTimeMilliseconds(), job.ScheduledAt.ToUnixTimeMilliseconds());

        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.True(done.StartedAt >= at, $"started {done.StartedAt:O} before scheduled {at:O}");
        var mail = await stack.Mail.WaitForMailAsync(m => m.To.Contains(email) && m.Subject == "Scheduled", TimeSpan.FromSeconds(30));
        Assert.True(mail.Date >= at.AddSeconds(-1));
    }

    [Fact]
    public async Task Bulk_mail_carries_the_tenants_postal_address_html_encoded_in_both_parts_with_an_unsubscribe_link()
    {
        var tenant = await stack.CreateTenantAsync();
        await stack.SetPostalAddressAsync(tenant, "ACME <script>alert(1)</script> & Sons\n1 Main St, Springfield");
        var email = $"footer@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));

        // A whole HTML document and a text part, neither with an unsubscribe link of its own.
        const string html = "<html><body><p>Hi {{ email }}</p></body></html>";
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Footer", html, "Hi {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        Assert.Empty(job.Warnings!);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);

        // Received by a real SMTP server and parsed by it.
        var (mail, unsubscribe) = await ReceivedWithUnsubscribeLinkAsync(email, "Footer");
        Assert.StartsWith(stack.MemberCenterUrl, unsubscribe);

        Assert.Contains("ACME &lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons<br>1 Main St, Springfield", mail.Html);
        Assert.DoesNotContain("<script>", mail.Html);
        Assert.Contains($"<a href=\"{unsubscribe}\"", mail.Html);
        // Inside the document's body, after the template's own content.
        Assert.True(mail.Html!.IndexOf("newsletter-footer", StringComparison.Ordinal) is var at && at > mail.Html.IndexOf("Hi ", StringComparison.Ordinal)
            && at < mail.Html.IndexOf("</body>", StringComparison.Ordinal), mail.Html);
        Assert.Contains("ACME <script>alert(1)</script> & Sons", mail.Text);
        Assert.Contains("1 Main St, Springfield", mail.Text);
        Assert.Contains("Unsubscribe: " + unsubscribe, mail.Text);

        // The compose preview shows the same footer (an unsubscribe_url merge value stands in for the minted link).
        using var preview = await se.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest("Footer", html, "Hi {{ email }}",
            new Dictionary<string, JsonElement> { ["unsubscribe_url"] = JsonSerializer.SerializeToElement("https://example.test/u") }), StackFixture.Json);
        var shown = await StackFixture.ReadAsync<ComposePreviewResponse>(preview, HttpStatusCode.OK);
        Assert.Contains("ACME &lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons<br>1 Main St, Springfield", shown.Html);
        Assert.Contains("<a href=\"https://example.test/u\"", shown.Html);
        Assert.Contains("Unsubscribe: https://example.test/u", shown.Text);
    }

    [Fact]
    public async Task Bulk_mail_of_a_japanese_list_carries_the_branded_footer_in_the_list_language_or_the_recipients_lang()
    {
        var tenant = await stack.CreateTenantAsync();
        await stack.SetBrandedFooterAsync(tenant, "ACME ニュース <b>{{ email }}</b>", "〒100-0001 東京都千代田区 1-1", "ja");
        var domain = StackFixture.UniqueDomain();
        string listDefault = $"ja@{domain}", korean = $"ko@{domain}", chinese = $"tw@{domain}";
        await stack.SubscribeAsync(tenant, [listDefault, korean, chinese], e =>
            e == korean ? new() { ["lang"] = JsonSerializer.SerializeToElement("ko") }
            : e == chinese ? new() { ["lang"] = JsonSerializer.SerializeToElement("zh-Hant") }
            : null);
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Branded",
            "<p>Hi {{ email }}</p>", "Hi {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);

        // Received by a real SMTP server: each recipient's footer, in the list's default language unless its lang says otherwise.
        foreach (var (to, link, line) in new[]
                 {
                     (listDefault, "配信停止", "配信停止："), (korean, "수신 거부", "수신 거부: "), (chinese, "取消訂閱", "取消訂閱："),
                 })
        {
            var (mail, unsubscribe) = await ReceivedWithUnsubscribeLinkAsync(to, "Branded");
            Assert.StartsWith(stack.MemberCenterUrl, unsubscribe);
            Assert.Contains("ACME ニュース &lt;b&gt;&#123;&#123; email &#125;&#125;&lt;/b&gt;", mail.Html);
            Assert.Contains("〒100-0001 東京都千代田区 1-1", mail.Html);
            Assert.Contains($"<a href=\"{unsubscribe}\" style=\"color:#555555\">{link}</a>", mail.Html);
            Assert.DoesNotContain(">Unsubscribe<", mail.Html);
            Assert.DoesNotContain(to, mail.Html!.Split("newsletter-footer")[1]);
            Assert.Contains("ACME ニュース <b>{ { email }}</b>\n\n〒100-0001 東京都千代田区 1-1", mail.Text!.ReplaceLineEndings("\n"));
            Assert.Contains(line + unsubscribe, mail.Text);
        }

        // The preview and the test send show the same footer (no list: a merge lang, else English).
        using var preview = await se.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest("Branded", "<p>Hi</p>", "Hi",
            new Dictionary<string, JsonElement>
            {
                ["unsubscribe_url"] = JsonSerializer.SerializeToElement("https://example.test/u"), ["lang"] = JsonSerializer.SerializeToElement("ja"),
            }), StackFixture.Json);
        var shown = await StackFixture.ReadAsync<ComposePreviewResponse>(preview, HttpStatusCode.OK);
        Assert.Contains("〒100-0001 東京都千代田区 1-1", shown.Html);
        Assert.Contains("<a href=\"https://example.test/u\" style=\"color:#555555\">配信停止</a>", shown.Html);
        Assert.Contains("配信停止：https://example.test/u", shown.Text);
        var tester = $"tester@{StackFixture.UniqueDomain()}";
        using var test = await se.PostAsJsonAsync("api/send-jobs/test-send", new ComposeRequest("Branded test", "<p>Hi</p>", "Hi",
            new Dictionary<string, JsonElement> { ["lang"] = JsonSerializer.SerializeToElement("ko") }, To: tester), StackFixture.Json);
        await StackFixture.ReadAsync<TestSendResponse>(test, HttpStatusCode.OK);
        var tested = await stack.Mail.WaitForMailAsync(m => m.To.Contains(tester), TimeSpan.FromSeconds(60));
        Assert.Contains("ACME ニュース &lt;b&gt;", tested.Html);
        Assert.Contains(">수신 거부</a>", tested.Html);
    }

    [Fact]
    public async Task Preview_and_test_send_with_a_list_id_show_the_footer_in_the_lists_language_or_the_given_lang_and_refuse_another_tenants_list()
    {
        var tenant = await stack.CreateTenantAsync();
        await stack.SetBrandedFooterAsync(tenant, "ACME ニュース", "〒100-0001 東京都千代田区 1-1", "ja");
        var other = await stack.CreateTenantAsync();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var merge = new Dictionary<string, JsonElement> { ["unsubscribe_url"] = JsonSerializer.SerializeToElement("https://example.test/u") };
        async Task<ComposePreviewResponse> PreviewAsync(string? listId, string? lang)
        {
            using var response = await se.PostAsJsonAsync("api/send-jobs/preview", new ComposeRequest("Lang", "<p>Hi</p>", "Hi", merge,
                ListId: listId, Lang: lang), StackFixture.Json);
            return await StackFixture.ReadAsync<ComposePreviewResponse>(response, HttpStatusCode.OK);
        }

        // No list and no lang: English, as before. The list: its default language (ja), with no merge lang at all.
        Assert.Contains(">Unsubscribe</a>", (await PreviewAsync(null, null)).Html);
        var ja = await PreviewAsync(tenant.ListId, null);
        Assert.Contains("<a href=\"https://example.test/u\" style=\"color:#555555\">配信停止</a>", ja.Html);
        Assert.Contains("配信停止：https://example.test/u", ja.Text);
        // A given lang wins over the list's default (a reader whose lang is ko); tags are read as the job reads them.
        Assert.Contains(">수신 거부</a>", (await PreviewAsync(tenant.ListId, "ko")).Html);
        Assert.Contains(">取消訂閱</a>", (await PreviewAsync(null, "zh-Hant")).Html);

        // The test send of the list, received by a real SMTP server: the MIME's parts carry the Japanese footer.
        var tester = $"tester@{StackFixture.UniqueDomain()}";
        using (var test = await se.PostAsJsonAsync("api/send-jobs/test-send", new ComposeRequest("Lang test", "<p>Hi</p>", "Hi", null, To: tester,
                   ListId: tenant.ListId), StackFixture.Json))
        {
            Assert.Equal("sent", (await StackFixture.ReadAsync<TestSendResponse>(test, HttpStatusCode.OK)).Outcome);
        }
        var received = await stack.Mail.WaitForMailAsync(m => m.To.Contains(tester), TimeSpan.FromSeconds(60));
        using var source = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(await stack.Mail.GetSourceAsync(received.Id)));
        var mime = await MimeKit.MimeMessage.LoadAsync(source);
        Assert.Equal("[TEST] Lang test", mime.Subject);
        Assert.Contains("〒100-0001 東京都千代田区 1-1", mime.HtmlBody);
        Assert.Contains(">配信停止</a>", mime.HtmlBody);
        Assert.DoesNotContain(">Unsubscribe<", mime.HtmlBody);
        Assert.Contains("配信停止：" + stack.MemberCenterUrl, mime.TextBody);

        // Another tenant's list is a 404 (and sends nothing); a list_id or lang that is none: 400 naming the field.
        foreach (var url in new[] { "api/send-jobs/preview", "api/send-jobs/test-send" })
        {
            using var foreign = await se.PostAsJsonAsync(url, new ComposeRequest("Foreign", "<p>Hi</p>", "Hi", null, To: tester, ListId: other.ListId),
                StackFixture.Json);
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
            Assert.Equal("application/problem+json", foreign.Content.Headers.ContentType?.MediaType);
            using var bad = await se.PostAsJsonAsync(url, new ComposeRequest("Bad", "<p>Hi</p>", "Hi", null, To: tester, ListId: "nope", Lang: "xx"),
                StackFixture.Json);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var errors = (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
            Assert.True(errors.TryGetProperty("list_id", out _), errors.ToString());
            Assert.True(errors.TryGetProperty("lang", out _), errors.ToString());
        }
        Assert.DoesNotContain(await stack.Mail.ListAsync(), m => m.Subject.Contains("Foreign", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_tenant_without_a_postal_address_gets_its_job_with_a_warning_and_mail_without_a_footer()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"nofooter@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));

        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "No footer",
            "<p>Hi</p><a href=\"{{ unsubscribe_url }}\">leave</a>", "Hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        var warning = Assert.Single(job.Warnings!);
        Assert.Equal(SendJobWarningCodes.PostalAddressMissing, warning.Code);
        Assert.Contains("postal_address", warning.Message);
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(SendJobWarningCodes.PostalAddressMissing, Assert.Single(done.Warnings!).Code);
        var mail = await stack.Mail.WaitForMailAsync(m => m.To.Contains(email) && m.Subject == "No footer", TimeSpan.FromSeconds(60));
        Assert.DoesNotContain("newsletter-footer", mail.Html);

        // Once the address is set, the next job has no warning.
        await stack.SetPostalAddressAsync(tenant, "2 Side St");
        using var next = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "With footer", null, "Hi", null), StackFixture.Json);
        Assert.Empty((await StackFixture.ReadAsync<SendJobResponse>(next, HttpStatusCode.Created)).Warnings!);
    }
}
