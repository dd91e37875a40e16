using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Composition;
using Newsletter.Contracts.Webhooks;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Tests;

/// <summary>
/// Issue 14, part 2: bounce and feedback mailboxes read over IMAP from a real Dovecot on loopback (tests/TestSupport
/// DovecotServer), fed the fixtures of Fixtures/bounces addressed to the VERP return path of messages this Send
/// Engine really sent through the test relay.
/// </summary>
[LongRunning(246)]
public sealed class BounceMailboxTests(StackFixture stack)
{
    private const string Scopes_ = Scopes.Webhooks + " " + Scopes.SendWrite + " " + Scopes.SendRead;
    private const string BounceDomain = "bounces.sender.example";

    [Fact]
    public async Task A_dsn_to_a_verp_address_bounces_and_suppresses_once_an_arf_complains_and_the_reader_survives_a_server_restart()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(2, "dsn");
        await using var dovecot = await DovecotServer.CreateAsync();
        var (engine, db) = await StartAsync(PlatformSettings(dovecot));
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var jobId = await RunJobAsync(se, tenant);
        var rows = await RecipientsAsync(db, jobId);
        var verp = engine.Services.GetRequiredService<ReturnPath>();
        var (first, second) = (rows[0], rows[1]);

        var dsn = BounceParserTests.Fixture("postfix-dsn.eml", verp.ForRecipient(first.Id, BounceDomain), first.Email, first.MessageId, Report());
        await dovecot.AppendAsync(dsn);
        await WaitForAsync(async () => await TestSql.ScalarAsync<string>(db, "SELECT status FROM send_job_recipients WHERE id = $1", first.Id) == "bounced", "the recipient bounced");
        await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM suppressions WHERE tenant_id = $1 AND email = $2 AND reason = 'hard_bounce'",
            Guid.Parse(tenant.TenantId), first.Email) == 1, "the address suppressed");
        var job = await StackFixture.ReadAsync<SendJobResponse>(await se.GetAsync($"api/send-jobs/{jobId}"), HttpStatusCode.OK);
        Assert.Equal(1, job.Counts.Bounced);
        var stats = await se.GetFromJsonAsync<EmailStatisticsResponse>($"api/email-addresses/{Uri.EscapeDataString(first.Email)}/statistics", StackFixture.Json);
        Assert.Equal(1, stats!.TotalBounced);
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM member_center_reports WHERE email = $1 AND reason = 'hard_bounce'", first.Email));
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 1, "the DSN moved to Processed");
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));
        // The tenant's webhook gateway log shows the report like a callback: source imap, its headers, the parsed result
        // and what it changed.
        GatewayEntryPage? log = null;
        await WaitForAsync(async () => (log = await se.GetFromJsonAsync<GatewayEntryPage>("api/webhook-gateway/events", StackFixture.Json))!.Items
            .Any(i => i.Result == GatewayResults.Applied), "the report in the tenant's gateway log");
        var logged = Assert.Single(log!.Items);
        Assert.Equal(GatewayRecorder.ImapSource, logged.Source);
        Assert.Equal(GatewayVerifications.Mailbox, logged.Verification);
        Assert.Equal(["hard_bounce"], logged.EventTypes);
        var detail = await se.GetFromJsonAsync<GatewayEntryResponse>($"api/webhook-gateway/events/{logged.EntryId}", StackFixture.Json);
        Assert.Equal("Undelivered Mail Returned to Sender", detail!.Headers["Subject"]);
        Assert.Contains("\"imap\"", detail.Body, StringComparison.Ordinal);
        Assert.Contains(first.MessageId, detail.Changes.Single().MessageId, StringComparison.Ordinal);
        Assert.Contains("recipient → bounced", detail.Changes.Single().Effect, StringComparison.Ordinal);

        // The same report read again (a copy back in the inbox, as after a crash between storing and moving): nothing doubles.
        await dovecot.AppendAsync(dsn);
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 2, "the copy moved to Processed");
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM email_events WHERE format = 'imap-dsn' AND recipient_id = $1", first.Id));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM email_events WHERE format = 'imap-dsn'"));
        stats = await se.GetFromJsonAsync<EmailStatisticsResponse>($"api/email-addresses/{Uri.EscapeDataString(first.Email)}/statistics", StackFixture.Json);
        Assert.Equal(1, stats!.TotalBounced);

        // The server goes away while the reader idles and comes back: the reader reconnects and reads the complaint.
        await dovecot.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await dovecot.StartAsync();
        var arf = BounceParserTests.Fixture("arf-complaint.eml", verp.ForRecipient(second.Id, BounceDomain), second.Email, second.MessageId, Report());
        await dovecot.AppendAsync(arf);
        await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM suppressions WHERE tenant_id = $1 AND email = $2 AND reason = 'complaint'",
            Guid.Parse(tenant.TenantId), second.Email) == 1, "the complainer suppressed");
        stats = await se.GetFromJsonAsync<EmailStatisticsResponse>($"api/email-addresses/{Uri.EscapeDataString(second.Email)}/statistics", StackFixture.Json);
        Assert.Equal(1, stats!.TotalComplaints);
        Assert.Equal("spamreport", await TestSql.ScalarAsync<string>(db, "SELECT event_type FROM email_events WHERE format = 'imap-arf'"));
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 3, "the report moved to Processed");
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));
        Assert.Equal(3L, await TestSql.ScalarAsync<long>(db, "SELECT processed FROM bounce_mailbox_status WHERE mailbox_key = 'platform'"));

        // Operators see the platform mailbox's counters.
        using var admin = await AdminAsync(engine);
        var platform = await admin.GetFromJsonAsync<PlatformBounceMailboxResponse>("admin/bounce-mailboxes/platform", StackFixture.Json);
        Assert.True(platform!.Configured);
        Assert.Equal(3, platform.Status.Processed);
        Assert.Null(platform.Status.LastError);
    }

    [Fact]
    public async Task A_tenant_mailbox_over_starttls_reads_exim_gmail_outlook_and_yahoo_bounces_ignores_a_delayed_dsn_and_sets_junk_aside()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(5, "shape");
        await using var dovecot = await DovecotServer.CreateAsync();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var jobId = await RunJobAsync(se, tenant);
        var rows = await RecipientsAsync(db, jobId);
        var verp = engine.Services.GetRequiredService<ReturnPath>();

        string[] shapes = ["exim-dsn.eml", "gmail-dsn.eml", "outlook-ndr.eml", "yahoo-dsn.eml", "delayed-dsn.eml"];
        for (var i = 0; i < shapes.Length; i++)
        {
            await dovecot.AppendAsync(BounceParserTests.Fixture(shapes[i], verp.ForRecipient(rows[i].Id, BounceDomain), rows[i].Email, rows[i].MessageId, Report()));
        }
        await dovecot.AppendAsync(BounceParserTests.Fixture("junk.eml", "postmaster@" + BounceDomain, "nobody@example.com", "x@y", Report()));

        var created = await se.PostAsJsonAsync("api/bounce-mailboxes", new CreateBounceMailboxRequest(dovecot.Host, dovecot.ImapPort, "start_tls",
            dovecot.Username, dovecot.Password, null, "Done", null, true, null), StackFixture.Json);
        var mailbox = await StackFixture.ReadAsync<BounceMailboxResponse>(created, HttpStatusCode.Created);
        Assert.Equal(BounceMailboxTls.StartTls, mailbox.Tls);
        Assert.DoesNotContain(dovecot.Password, await created.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM send_job_recipients WHERE job_id = $1 AND status = 'bounced'",
            Guid.Parse(jobId)) == 4, "four recipients bounced");
        await WaitForAsync(async () => await dovecot.CountAsync("Done") == 5 && await dovecot.CountAsync("Unparsable") == 1, "all messages moved");
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));
        // The delayed DSN raised nothing: its recipient is still sent, not suppressed.
        Assert.Equal("sent", await TestSql.ScalarAsync<string>(db, "SELECT status FROM send_job_recipients WHERE id = $1", rows[4].Id));
        Assert.Equal(4L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM suppressions WHERE tenant_id = $1 AND reason = 'hard_bounce'", Guid.Parse(tenant.TenantId)));
        Assert.Equal(["You won a prize"], await dovecot.SubjectsAsync("Unparsable"));

        var read = await se.GetFromJsonAsync<BounceMailboxResponse>($"api/bounce-mailboxes/{mailbox.MailboxId}", StackFixture.Json);
        Assert.Equal(4, read!.Status.Processed);
        Assert.Equal(1, read.Status.Ignored);
        Assert.Equal(1, read.Status.Unparsable);
        Assert.NotNull(read.Status.LastConnectedAt);
        var problems = await se.GetFromJsonAsync<BounceMessageList>($"api/bounce-mailboxes/{mailbox.MailboxId}/messages", StackFixture.Json);
        var junk = Assert.Single(problems!.Items);
        Assert.Equal("unparsable", junk.Outcome);
        Assert.Equal("You won a prize", junk.Subject);
        Assert.Contains("neither", junk.Reason, StringComparison.Ordinal);
        await StackFixture.WaitForMetricsAsync(engine.CreateClient(), "(?m)^sendengine_bounce_mailbox_messages_total\\{(?=[^}]*kind=\"tenant\")(?=[^}]*outcome=\"unparsable\")[^}]*\\} 1( |$)");
    }

    [Fact]
    public async Task A_report_whose_events_cannot_be_stored_stays_and_is_retried_and_is_set_aside_after_max_attempts()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(2, "retry");
        await using var dovecot = await DovecotServer.CreateAsync();
        var settings = PlatformSettings(dovecot);
        settings["BounceMailboxes:MaxAttempts"] = "3";
        // Retries come one poll interval apart: long enough to see the second report waiting before it is given up.
        settings["BounceMailboxes:PollInterval"] = "00:00:03";
        var (engine, db) = await StartAsync(settings);
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var jobId = await RunJobAsync(se, tenant);
        var rows = await RecipientsAsync(db, jobId);
        var verp = engine.Services.GetRequiredService<ReturnPath>();
        string Dsn(Row r) => BounceParserTests.Fixture("postfix-dsn.eml", verp.ForRecipient(r.Id, BounceDomain), r.Email, r.MessageId, Report());

        // The event store fails (its table is gone for a while).
        await TestSql.ScalarAsync<object>(db, "ALTER TABLE email_events RENAME TO email_events_away");
        try
        {
            await dovecot.AppendAsync(Dsn(rows[0]));
            await WaitForAsync(async () => await dovecot.CountAsync("Unparsable") == 1, "the first report given up");
            Assert.Equal(3, await TestSql.ScalarAsync<int>(db, "SELECT attempts FROM bounce_messages WHERE outcome = 'unparsable'"));
            Assert.Contains("not stored after 3 attempts", await TestSql.ScalarAsync<string>(db, "SELECT reason FROM bounce_messages WHERE outcome = 'unparsable'"), StringComparison.Ordinal);

            await dovecot.AppendAsync(Dsn(rows[1]));
            await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM bounce_messages WHERE outcome = 'retrying'") == 1, "the second report retrying");
            Assert.Equal(1, await dovecot.CountAsync("INBOX"));
        }
        finally
        {
            await TestSql.ScalarAsync<object>(db, "ALTER TABLE email_events_away RENAME TO email_events");
        }
        // The store is back: the waiting report is processed at the next scan, and its retry row goes.
        await WaitForAsync(async () => await TestSql.ScalarAsync<string>(db, "SELECT status FROM send_job_recipients WHERE id = $1", rows[1].Id) == "bounced", "the second recipient bounced");
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 1, "the second report processed");
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM bounce_messages WHERE outcome = 'retrying'"));
        Assert.Equal("sent", await TestSql.ScalarAsync<string>(db, "SELECT status FROM send_job_recipients WHERE id = $1", rows[0].Id));
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));
    }

    [Fact]
    public async Task Idle_wakes_the_reader_when_mail_arrives_long_before_the_poll_interval()
    {
        await using var dovecot = await DovecotServer.CreateAsync();
        var settings = PlatformSettings(dovecot);
        settings["BounceMailboxes:PollInterval"] = "00:10:00";
        var (engine, db) = await StartAsync(settings);
        await using var _e = engine;
        // The first scan is done: the reader now waits in IDLE.
        await WaitForAsync(async () => await TestSql.ScalarAsync<object>(db, "SELECT last_checked_at FROM bounce_mailbox_status WHERE mailbox_key = 'platform'") is DateTime,
            "the first scan");
        await Task.Delay(500);
        var sw = Stopwatch.StartNew();
        await dovecot.AppendAsync(BounceParserTests.Fixture("junk.eml", "postmaster@" + BounceDomain, "x@example.com", "x@y", Report()));
        await WaitForAsync(async () => await dovecot.CountAsync("Unparsable") == 1, "the message handled", TimeSpan.FromSeconds(30));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"handled after {sw.Elapsed}");
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));
    }

    [Fact]
    public async Task A_wrong_password_is_logged_and_retried_with_backoff_and_another_tenants_mailbox_is_a_404()
    {
        var owner = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        await using var dovecot = await DovecotServer.CreateAsync();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var ownerClient = await ClientAsync(engine, owner);
        using var otherClient = await ClientAsync(engine, other);

        using (var bad = await ownerClient.PostAsJsonAsync("api/bounce-mailboxes", new CreateBounceMailboxRequest(dovecot.Host, dovecot.ImapsPort, "imap-over-carrier-pigeon",
                   dovecot.Username, "x", null, null, "INBOX", null, null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var body = await bad.Content.ReadAsStringAsync();
            Assert.Contains("\"tls\"", body, StringComparison.Ordinal);
            Assert.Contains("\"unparsable_folder\"", body, StringComparison.Ordinal);
        }
        var created = await ownerClient.PostAsJsonAsync("api/bounce-mailboxes", new CreateBounceMailboxRequest(dovecot.Host, dovecot.ImapsPort, null,
            dovecot.Username, "wrong-password", null, null, null, true, null), StackFixture.Json);
        var mailbox = await StackFixture.ReadAsync<BounceMailboxResponse>(created, HttpStatusCode.Created);
        var id = mailbox.MailboxId;

        var failed = await WaitForAsync(async () =>
        {
            var m = await ownerClient.GetFromJsonAsync<BounceMailboxResponse>($"api/bounce-mailboxes/{id}", StackFixture.Json);
            return m!.Status.LastError is not null ? m : null;
        }, "the login error");
        Assert.Contains("login as bounces failed", failed.Status.LastError, StringComparison.Ordinal);
        Assert.Null(failed.Status.LastConnectedAt);
        // Logged as an error naming the mailbox (Serilog quotes the string values).
        await WaitForAsync(async () =>
        {
            await Task.Yield();
            return ServiceLogs.Dump(5000).Split('\n').Any(l => l.Contains("Error: Bounce mailbox", StringComparison.Ordinal)
                && l.Contains(Guid.Parse(id).ToString("N"), StringComparison.Ordinal) && l.Contains("check the username and password", StringComparison.Ordinal));
        }, "the login error in the log");
        // Retried with a doubling delay (0.2 s, 0.4 s… up to ReconnectMaxDelay), not in a tight loop.
        await WaitForAsync(async () =>
        {
            await Task.Yield();
            return ServiceLogs.Dump(5000).Contains("Retrying in 00:00:00.4000000", StringComparison.Ordinal);
        }, "a second, longer back-off");
        // Dovecot's own log of the refusal (read from its output asynchronously, so it may trail the reader's).
        await WaitForAsync(async () =>
        {
            await Task.Yield();
            return dovecot.Output.Contains("auth failed", StringComparison.OrdinalIgnoreCase);
        }, "dovecot's log of the failed login");

        // The right password: the reader connects and the error clears.
        using (var fixedIt = await ownerClient.PatchAsJsonAsync($"api/bounce-mailboxes/{id}", new UpdateBounceMailboxRequest(null, null, null, null, dovecot.Password,
                   null, null, null, null, null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.OK, fixedIt.StatusCode);
            Assert.DoesNotContain(dovecot.Password, await fixedIt.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        await WaitForAsync(async () =>
        {
            var m = await ownerClient.GetFromJsonAsync<BounceMailboxResponse>($"api/bounce-mailboxes/{id}", StackFixture.Json);
            return m!.Status.LastConnectedAt is not null && m.Status.LastError is null ? m : null;
        }, "the login with the new password");
        var stored = await TestSql.ScalarAsync<byte[]>(db, "SELECT password FROM bounce_mailboxes WHERE id = $1", Guid.Parse(id));
        Assert.True(stored.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(dovecot.Password)) < 0, "the password is stored encrypted");

        // Tenant isolation: another tenant's mailbox does not exist for it.
        await StackFixture.AssertAllNotFoundAsync(otherClient,
            () => new(HttpMethod.Get, $"api/bounce-mailboxes/{id}"),
            () => new(HttpMethod.Patch, $"api/bounce-mailboxes/{id}") { Content = JsonContent.Create(new { enabled = false }) },
            () => new(HttpMethod.Delete, $"api/bounce-mailboxes/{id}"),
            () => new(HttpMethod.Get, $"api/bounce-mailboxes/{id}/messages"));
        Assert.Empty((await otherClient.GetFromJsonAsync<BounceMailboxList>("api/bounce-mailboxes", StackFixture.Json))!.Items);
        Assert.Single((await ownerClient.GetFromJsonAsync<BounceMailboxList>("api/bounce-mailboxes", StackFixture.Json))!.Items);

        // A viewer's scope (send.read, without webhooks) reads the mailboxes and their status, never the password; every
        // change, check and the set-aside messages are 403. A tenant token on the admin routes: 403; the operator manages any tenant's.
        using var sendOnly = engine.CreateClient();
        sendOnly.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(owner, Scopes.SendRead));
        Assert.Equal(id, Assert.Single((await sendOnly.GetFromJsonAsync<BounceMailboxList>("api/bounce-mailboxes", StackFixture.Json))!.Items).MailboxId);
        using (var one = await sendOnly.GetAsync($"api/bounce-mailboxes/{id}"))
        {
            var body = await one.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, one.StatusCode);
            Assert.Contains(dovecot.Username, body, StringComparison.Ordinal);
            Assert.DoesNotContain(dovecot.Password, body, StringComparison.Ordinal);
            Assert.DoesNotContain("\"password\"", body, StringComparison.Ordinal);
        }
        foreach (var refused in new Func<HttpRequestMessage>[]
        {
            () => new(HttpMethod.Post, "api/bounce-mailboxes") { Content = JsonContent.Create(new { host = "x", username = "u", password = "p" }) },
            () => new(HttpMethod.Patch, $"api/bounce-mailboxes/{id}") { Content = JsonContent.Create(new { enabled = false }) },
            () => new(HttpMethod.Delete, $"api/bounce-mailboxes/{id}"),
            () => new(HttpMethod.Post, $"api/bounce-mailboxes/{id}/verify"),
            () => new(HttpMethod.Get, $"api/bounce-mailboxes/{id}/messages"),
        })
        {
            using var request = refused();
            using var response = await sendOnly.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{request.Method} {request.RequestUri}: {(int)response.StatusCode}");
        }
        Assert.Equal(HttpStatusCode.Forbidden, (await ownerClient.GetAsync($"admin/tenants/{owner.TenantId}/bounce-mailboxes")).StatusCode);
        using var admin = await AdminAsync(engine);
        var listed = await admin.GetFromJsonAsync<BounceMailboxList>($"admin/tenants/{owner.TenantId}/bounce-mailboxes", StackFixture.Json);
        Assert.Equal(id, Assert.Single(listed!.Items).MailboxId);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync($"admin/tenants/{other.TenantId}/bounce-mailboxes/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"admin/tenants/{owner.TenantId}/bounce-mailboxes/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ownerClient.GetAsync($"api/bounce-mailboxes/{id}")).StatusCode);
    }

    [Fact]
    public async Task Of_two_Send_Engine_processes_only_one_reads_the_mailbox_and_the_other_takes_over_when_it_is_killed()
    {
        await using var dovecot = await DovecotServer.CreateAsync();
        var settings = new Dictionary<string, string?>(ReaderTuning);
        foreach (var (k, v) in PlatformSettings(dovecot))
        {
            settings[k] = v;
        }
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var first = await SendEngineProcess.StartAsync(stack.SendEngineSettings(db, settings));
        await first.WaitUntilAsync(() => Task.FromResult(Connections(first) == 1), "the first process reading the mailbox");
        await using var second = await SendEngineProcess.StartAsync(stack.SendEngineSettings(db, settings));

        // The second process finds the mailbox's advisory lock taken: over many refresh intervals it never connects,
        // and a report that arrives is read (once) by the first.
        await Task.Delay(TimeSpan.FromSeconds(3));
        await dovecot.AppendAsync(Unmatched());
        // The log line can trail the move to Processed (the process's output is read asynchronously): wait for both.
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 1 && Handled(first) == 1, "the first report read");
        Assert.Equal((1, 1), (Connections(first), Handled(first)));
        Assert.Equal((0, 0), (Connections(second), Handled(second)));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(db, """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, SendEngine.Features.BounceMailboxes.BounceMailboxReader.LockKey("platform")));

        // The first process dies (SIGKILL: no graceful release; its database session ends with it): the second takes
        // the lock within a refresh interval and reads what arrives next.
        await first.KillAsync();
        await second.WaitUntilAsync(() => Task.FromResult(Connections(second) == 1), "the second process taking over");
        await dovecot.AppendAsync(Unmatched());
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 2 && Handled(second) == 1, "the second report read");
        Assert.Equal(0, await dovecot.CountAsync("INBOX"));

        static int Connections(SendEngineProcess p) => Regex.Count(p.Output, @"Bounce mailbox ""?platform""?: connected to");
        static int Handled(SendEngineProcess p) => Regex.Count(p.Output, @"Bounce mailbox ""?platform""?: message \d+");
        static string Unmatched() => BounceParserTests.Fixture("postfix-dsn.eml", "nobody@bounces.elsewhere.example", "reader@elsewhere.example",
            Report(), Report());
    }

    [Fact]
    public async Task Bounce_message_rows_are_deleted_after_the_retention_window()
    {
        var (engine, db) = await StartAsync(new() { ["Retention:BounceMessageRetention"] = "30.00:00:00" });
        await using var _e = engine;
        // Old and recent unparsable rows, and an old and a recent retrying row (back-dated by SQL).
        foreach (var (uid, outcome, age) in new[] { (1L, "unparsable", 31), (2L, "unparsable", 29), (3L, "retrying", 31), (4L, "retrying", 1) })
        {
            await TestSql.ScalarAsync<object>(db, """
                INSERT INTO bounce_messages (mailbox_key, uid_validity, uid, outcome, reason, attempts, first_seen_at, updated_at)
                VALUES ('platform', 7, $1, $2, 'junk', 1, now() - make_interval(days => $3), now() - make_interval(days => $3))
                """, uid, outcome, age);
        }

        var result = await engine.Services.GetRequiredService<Features.Retention.RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken);

        Assert.Equal(2, result.BounceMessages);
        Assert.Equal(6L, await TestSql.ScalarAsync<long>(db, "SELECT coalesce(sum(uid), 0)::bigint FROM bounce_messages"));
    }

    // ------------------------------------------------------------------ helpers

    private static string Report() => $"{Guid.NewGuid():N}@mta.example";

    internal static Dictionary<string, string?> PlatformSettings(DovecotServer dovecot) => new()
    {
        ["BounceMailboxes:Platform:Host"] = dovecot.Host,
        ["BounceMailboxes:Platform:Port"] = dovecot.ImapsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["BounceMailboxes:Platform:Tls"] = "SslOnConnect",
        ["BounceMailboxes:Platform:Username"] = dovecot.Username,
        ["BounceMailboxes:Platform:Password"] = dovecot.Password,
        ["BounceMailboxes:Platform:AllowInvalidCertificate"] = "true",
    };

    /// <summary>A Send Engine of its own (own database) whose readers poll, refresh and reconnect quickly.</summary>
    private Task<(SendEngineFactory Engine, string Db)> StartAsync(Dictionary<string, string?>? overrides = null) =>
        stack.StartSendEngineAsync(ReaderTuning, overrides);

    private static readonly Dictionary<string, string?> ReaderTuning = new()
    {
        ["BounceMailboxes:PollInterval"] = "00:00:00.500",
        ["BounceMailboxes:RefreshInterval"] = "00:00:00.300",
        ["BounceMailboxes:ReconnectMinDelay"] = "00:00:00.200",
        ["BounceMailboxes:ReconnectMaxDelay"] = "00:00:01",
        ["BounceMailboxes:CommandTimeout"] = "00:00:10",
        ["BounceMailboxes:AllowPrivateNetworks"] = "true",
        ["EmailEvents:PollInterval"] = "00:00:00.200",
    };

    private Task<HttpClient> ClientAsync(SendEngineFactory engine, TestTenant tenant) => stack.SendEngineClientAsync(engine, tenant, Scopes_);

    private async Task<HttpClient> AdminAsync(SendEngineFactory engine)
    {
        var admin = engine.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        return admin;
    }

    private static async Task<string> RunJobAsync(HttpClient se, TestTenant tenant)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Newsletter", null, "hello", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        return job.Id;
    }

    private sealed record Row(long Id, string Email, string MessageId);

    private static async Task<List<Row>> RecipientsAsync(string db, string jobId)
    {
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT id, email, message_id FROM send_job_recipients WHERE job_id = $1 ORDER BY id", conn)
        {
            Parameters = { new() { Value = Guid.Parse(jobId) } },
        };
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<Row>();
        while (await reader.ReadAsync())
        {
            rows.Add(new Row(reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
        }
        return rows;
    }

    private static async Task WaitForAsync(Func<Task<bool>> probe, string what, TimeSpan? timeout = null) =>
        await WaitForAsync(async () => await probe() ? "" : null, what, timeout);

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null) where T : class
    {
        var limit = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < limit)
        {
            if (await probe() is { } found)
            {
                return found;
            }
            await Task.Delay(150);
        }
        throw new TimeoutException($"{what}: not reached\n" + ServiceLogs.Dump());
    }
}
