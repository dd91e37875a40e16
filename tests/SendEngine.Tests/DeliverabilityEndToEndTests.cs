using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.SenderDomains;
using Newsletter.TestSupport;
using SendEngine.Composition;
using static SendEngine.Tests.TestDatabase;

namespace SendEngine.Tests;

/// <summary>
/// Issue 14 end to end with real servers (PostgreSQL, the aiosmtpd relay, dnsmasq, Dovecot, dkimpy): a tenant's
/// domain registered, published and verified; a bulk job from it that the independent verifier accepts; a DSN in the
/// platform bounce mailbox suppressing the address and reporting it to Member Center; more bounces pausing the tenant;
/// an operator's resume with a note; and a job sending again. The fixtures are those of SenderDomainDkimTests,
/// BounceMailboxTests and ReputationTests.
/// </summary>
public sealed class DeliverabilityEndToEndTests(StackFixture stack)
{
    [Fact]
    public async Task A_verified_domain_sends_signed_mail_its_bounces_suppress_and_pause_the_tenant_and_an_operator_resume_lets_it_send_again()
    {
        const int Subscribers = 30;
        var domain = $"d{Guid.NewGuid():N}"[..13] + ".tenant.test";
        await using var dns = await DnsmasqServer.StartAsync();
        await using var smtp = await RecordingSmtpServer.StartAsync();
        await using var dovecot = await DovecotServer.CreateAsync();
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(Subscribers, "e2e");
        var db = await stack.CreateSendEngineDatabaseAsync();
        var settings = BounceMailboxTests.PlatformSettings(dovecot);
        foreach (var (k, v) in new Dictionary<string, string?>
                 {
                     ["SenderDomains:AllowUnverified"] = "false",
                     ["SenderDomains:DnsServers:0"] = dns.EndPoint,
                     ["SenderDomains:DnsTimeout"] = "00:00:02",
                     ["SenderDomains:SpfInclude"] = "_spf.platform.test",
                     ["SenderDomains:BounceMxHost"] = "mx.platform.test",
                     ["SenderDomains:CacheDuration"] = "00:00:00",
                     ["SenderDomains:KeyPassword"] = "a-test-key-password-0123456789",
                     ["Smtp:Host"] = smtp.Host,
                     ["Smtp:Port"] = smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     ["Smtp:FromAddress"] = "news@" + domain,
                     ["BounceMailboxes:PollInterval"] = "00:00:00.500",
                     ["BounceMailboxes:ReconnectMinDelay"] = "00:00:00.200",
                     ["BounceMailboxes:ReconnectMaxDelay"] = "00:00:01",
                     ["EmailEvents:PollInterval"] = "00:00:00.200",
                     // A handful of recipients decide: 1 of 30 hard bounces warns (3.3 %), 3 of 30 pause (10 %).
                     ["Reputation:MinimumVolume"] = "10",
                     ["Reputation:EvaluationInterval"] = "00:00:00.300",
                 })
        {
            settings[k] = v;
        }
        await using var engine = stack.CreateSendEngine(db, settings);
        _ = engine.Server;
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        using var admin = engine.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));

        // 1. Registered: records to publish, and bulk mail from the domain refused until it is verified.
        var created = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));
        Assert.Equal(SenderDomainStatuses.Unverified, created.Status);
        using (var refused = await se.PostAsJsonAsync("api/send-jobs", Job(tenant, "Too early"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            Assert.Contains(domain, await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // 2. The records as listed, published in dnsmasq: verified.
        await dns.SetRecordsAsync(SenderDomainDkimTests.Published(created));
        var verified = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.True(verified.Status == SenderDomainStatuses.Verified, JsonSerializer.Serialize(verified.Records));
        Assert.All(verified.Records!, r => Assert.Equal(DnsRecordStatuses.Ok, r.Status));

        // 3. A bulk job goes out from the domain, signed so that dkimverify (keys from dnsmasq) accepts it.
        var first = await CreateJobAsync(se, tenant, "First " + Guid.NewGuid().ToString("N")[..8]);
        var firstDone = await StackFixture.WaitForJobAsync(se, first.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(Subscribers, firstDone.Counts.Sent);
        var received = await smtp.WaitForAsync(emails[0]);
        Assert.Equal(first.Subject, MimeKit.MimeMessage.Load(new MemoryStream(received.Raw)).Subject);
        Assert.Equal("news@" + domain, ((MimeKit.MailboxAddress)MimeKit.MimeMessage.Load(new MemoryStream(received.Raw)).From.Single()).Address);
        await SenderDomainDkimTests.AssertDkimPassesAsync(received, dns, domain, verified.DkimSelector!);

        // Each message's envelope sender is its recipient's VERP address on the domain's return path.
        var verp = engine.Services.GetRequiredService<ReturnPath>();
        var rows = await RecipientsAsync(se, first.Id);
        var bounced = rows.Take(3).ToList();
        var envelopes = new Dictionary<long, string>();
        foreach (var row in bounced)
        {
            var mail = await smtp.WaitForAsync(row.Email);
            Assert.Equal(verp.ForRecipient(row.Id, created.ReturnPathDomain!), mail.MailFrom);
            envelopes[row.Id] = mail.MailFrom;
        }

        // 4. A DSN for one recipient, to that envelope, lands in the platform bounce mailbox: the recipient bounces, the
        // address is suppressed and reported to Member Center (accepted there), and the tenant is warned, not paused.
        await dovecot.AppendAsync(Dsn(bounced[0]));
        await WaitForAsync(async () => (await RecipientsAsync(se, first.Id)).Single(r => r.Id == bounced[0].Id).Status == RecipientStatuses.Bounced,
            "the first recipient bounced");
        var suppressions = await se.GetFromJsonAsync<SuppressionPage>($"api/suppressions?email={Uri.EscapeDataString(bounced[0].Email)}", StackFixture.Json);
        Assert.Equal("hard_bounce", Assert.Single(suppressions!.Items, s => s.Email == bounced[0].Email).Reason);
        await WaitForAsync(async () => (await QueryAsync(db, "SELECT 1 FROM member_center_reports WHERE email = $1 AND reason = 'hard_bounce' AND outcome = 'sent'",
            bounced[0].Email)).Count == 1, "the suppression reported to Member Center");
        var warned = await WaitForStateAsync(se, "warning");
        Assert.Equal(1, warned.GetProperty("window24h").GetProperty("hard_bounces").GetInt32());
        await WaitForAsync(async () => await dovecot.CountAsync("Processed") == 1, "the DSN moved to Processed");

        // 5. Two more DSNs: 2 of 30 is already over the 5 % line, so the tenant's bulk mail is paused (possibly before
        // the third DSN is read: wait until all three are counted) and new jobs are refused.
        await dovecot.AppendAsync(Dsn(bounced[1]));
        await dovecot.AppendAsync(Dsn(bounced[2]));
        var paused = await WaitForStateAsync(se, "paused", r => r.GetProperty("window24h").GetProperty("hard_bounces").GetInt32() == 3);
        Assert.True(paused.GetProperty("bulk_paused").GetBoolean());
        Assert.Contains("hard bounce rate", paused.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(3, paused.GetProperty("window24h").GetProperty("hard_bounces").GetInt32());
        Assert.Equal(3L, (await QueryAsync(db, "SELECT count(*) FROM suppressions WHERE tenant_id = $1 AND reason = 'hard_bounce'", Guid.Parse(tenant.TenantId)))[0][0]);
        using (var refused = await se.PostAsJsonAsync("api/send-jobs", Job(tenant, "While paused"), StackFixture.Json))
        {
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.Conflict, body);
            Assert.Contains("tenant_paused", body, StringComparison.Ordinal);
        }

        // 6. An operator resumes with a note (none is a 400): the tenant is ok again, with a fresh window.
        using (var noNote = await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noNote.StatusCode);
        }
        using (var resumed = await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/reputation/resume", new { note = "bounces removed, ticket 14" }))
        {
            Assert.True(resumed.StatusCode == HttpStatusCode.OK, await resumed.Content.ReadAsStringAsync());
        }
        var ok = await ReputationAsync(se);
        Assert.Equal(("ok", 0), (ok.GetProperty("state").GetString(), ok.GetProperty("window24h").GetProperty("hard_bounces").GetInt32()));

        // 7. A job sends again, signed, and reaches none of the bounced addresses.
        var again = await CreateJobAsync(se, tenant, "Again " + Guid.NewGuid().ToString("N")[..8]);
        var againDone = await StackFixture.WaitForJobAsync(se, again.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Null(againDone.PausedReason);
        var againRows = await RecipientsAsync(se, again.Id);
        Assert.Equal(Subscribers - 3, againRows.Count(r => r.Status == RecipientStatuses.Sent));
        Assert.All(againRows.Where(r => bounced.Any(b => b.Email == r.Email)), r => Assert.Equal(RecipientStatuses.Suppressed, r.Status));
        var againMail = smtp.Received().Where(m => MimeKit.MimeMessage.Load(new MemoryStream(m.Raw)).Subject == again.Subject).ToList();
        Assert.Equal(Subscribers - 3, againMail.Count);
        Assert.DoesNotContain(againMail, m => m.RcptTos.Any(to => bounced.Any(b => string.Equals(b.Email, to, StringComparison.OrdinalIgnoreCase))));
        await SenderDomainDkimTests.AssertDkimPassesAsync(againMail[0], dns, domain, verified.DkimSelector!);

        string Dsn(SendJobRecipientResponse row) => BounceParserTests.Fixture("postfix-dsn.eml", envelopes[row.Id], row.Email, row.MessageId!, $"{Guid.NewGuid():N}@mta.example");
    }

    private static CreateSendJobRequest Job(TestTenant tenant, string subject) =>
        new(null, tenant.ListId, null, subject, "<p>Hi {{ email }}</p>", "Hi {{ email }}", null);

    private static async Task<SendJobResponse> CreateJobAsync(HttpClient se, TestTenant tenant, string subject)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", Job(tenant, subject), StackFixture.Json);
        return await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
    }

    private static async Task<List<SendJobRecipientResponse>> RecipientsAsync(HttpClient se, string jobId) =>
        [.. (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=500", StackFixture.Json))!.Items];

    private static async Task<JsonElement> ReputationAsync(HttpClient client)
    {
        using var response = await client.GetAsync("api/reputation");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task<JsonElement> WaitForStateAsync(HttpClient client, string state, Func<JsonElement, bool>? and = null)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var r = await ReputationAsync(client);
            if (r.GetProperty("state").GetString() == state && (and is null || and(r)))
            {
                return r;
            }
            Assert.True(DateTime.UtcNow < until, $"state never became {state}: {r}");
            await Task.Delay(150);
        }
    }

    private static Task WaitForAsync(Func<Task<bool>> probe, string what) =>
        Poll.UntilAsync(probe, TimeSpan.FromSeconds(30), () => $"{what}: not reached\n" + ServiceLogs.Dump(), TimeSpan.FromMilliseconds(150));
}
