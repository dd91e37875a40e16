using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Transactional;
using Newsletter.TestSupport;
using SendEngine.Composition;
using SendEngine.Data;
using SendEngine.Features.SenderDomains;

namespace SendEngine.Tests;

/// <summary>
/// Verified sender domains end to end with real servers: dnsmasq serves the records the API lists, aiosmtpd records
/// the messages with their envelope, and Debian's python3-dkim (dkimpy, looking keys up at the dnsmasq) is the
/// independent DKIM verifier. A Send Engine of its own with SenderDomains:AllowUnverified off.
/// </summary>
[LongRunning(66)]
public sealed partial class SenderDomainDkimTests(StackFixture stack)
{
    private const string SpfInclude = "_spf.platform.test";
    private const string BounceMx = "mx.platform.test";

    private static string NewDomain() => $"d{Guid.NewGuid():N}"[..13] + ".tenant.test";

    private SendEngineFactory CreateEngine(string dns, RecordingSmtpServer smtp, string fromDomain, string database) =>
        stack.CreateSendEngine(database, new Dictionary<string, string?>
        {
            ["SenderDomains:AllowUnverified"] = "false",
            ["SenderDomains:DnsServers:0"] = dns,
            ["SenderDomains:DnsTimeout"] = "00:00:02",
            ["SenderDomains:SpfInclude"] = SpfInclude,
            ["SenderDomains:BounceMxHost"] = BounceMx,
            ["SenderDomains:DmarcReportAddress"] = "dmarc@platform.test",
            ["SenderDomains:CacheDuration"] = "00:00:00",
            ["SenderDomains:KeyPassword"] = "a-test-key-password-0123456789",
            ["Smtp:Host"] = smtp.Host,
            ["Smtp:Port"] = smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Smtp:FromAddress"] = "news@" + fromDomain,
        });

    /// <summary>The records of a domain as the API lists them, as dnsmasq serves them.</summary>
    internal static IEnumerable<DnsRecord> Published(SenderDomainResponse d, Func<SenderDomainDnsRecord, bool>? include = null) =>
        d.Records!.Where(include ?? (_ => true)).Select(r => r.Type == "MX"
            ? DnsRecord.Mx(r.Name, r.Value.Split(' ')[1], int.Parse(r.Value.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture))
            : DnsRecord.Txt(r.Name, r.Value));

    internal static SenderDomainDnsRecord Record(SenderDomainResponse d, string purpose) => d.Records!.First(r => r.Purpose == purpose);

    [Fact]
    public async Task A_verified_domain_signs_bulk_and_transactional_mail_that_dkimverify_accepts_and_unverified_ones_are_refused()
    {
        var domain = NewDomain();
        await using var dns = await DnsmasqServer.StartAsync();
        await using var smtp = await RecordingSmtpServer.StartAsync();
        await using var engine = CreateEngine(dns.EndPoint, smtp, domain, await stack.CreateSendEngineDatabaseAsync());
        var tenant = await stack.CreateTenantAsync();
        var subscriber = $"reader@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [subscriber]);
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var tx = engine.CreateClient();
        tx.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));

        // Registered: a key and the records to publish, nothing checked yet.
        var created = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));
        var today = "nl" + DateTime.UtcNow.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal((SenderDomainStatuses.Unverified, today, "bounce." + domain), (created.Status, created.DkimSelector, created.ReturnPathDomain));
        var dkim = Record(created, DnsRecordPurposes.Dkim);
        Assert.Equal(($"{today}._domainkey.{domain}", "TXT", true, DnsRecordStatuses.Unchecked), (dkim.Name, dkim.Type, dkim.Required, dkim.Status));
        Assert.Matches("^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{390,}$", dkim.Value);
        Assert.Equal(("bounce." + domain, "10 " + BounceMx, true), (Record(created, DnsRecordPurposes.ReturnPathMx).Name, Record(created, DnsRecordPurposes.ReturnPathMx).Value, Record(created, DnsRecordPurposes.ReturnPathMx).Required));
        Assert.Equal($"v=spf1 include:{SpfInclude} -all", Record(created, DnsRecordPurposes.ReturnPathSpf).Value);
        Assert.Equal((domain, $"v=spf1 include:{SpfInclude} ~all"), (Record(created, DnsRecordPurposes.Spf).Name, Record(created, DnsRecordPurposes.Spf).Value));
        Assert.Equal(("_dmarc." + domain, "v=DMARC1; p=none; rua=mailto:dmarc@platform.test", false),
            (Record(created, DnsRecordPurposes.Dmarc).Name, Record(created, DnsRecordPurposes.Dmarc).Value, Record(created, DnsRecordPurposes.Dmarc).Required));
        // The JSON is snake_case.
        var raw = await se.GetStringAsync($"api/sender-domains/{domain}");
        Assert.Contains("\"dkim_selector\":", raw, StringComparison.Ordinal);
        Assert.Contains("\"return_path_domain\":", raw, StringComparison.Ordinal);

        // Unverified: the bulk job is refused at create, naming the domain, and transactional mail is rejected.
        using (var refused = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Refused", null, "hi", null), StackFixture.Json))
        {
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.UnprocessableEntity, body);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Equal(domain, JsonDocument.Parse(body).RootElement.GetProperty("domain").GetString());
            Assert.Contains(domain, JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        var rejected = await SendTransactionalAsync(tx, domain, subscriber, "unverified");
        Assert.Equal((EmailTaskStatuses.Rejected, EmailRejectReasons.InvalidSender), (rejected.Status, rejected.RejectReason));

        // Nothing published: failed, each required record missing.
        var none = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.Equal(SenderDomainStatuses.Failed, none.Status);
        Assert.NotNull(none.LastCheckedAt);
        Assert.All(none.Records!, r => Assert.Equal(DnsRecordStatuses.Missing, r.Status));

        // A wrong DKIM key and an MX elsewhere: reported as wrong with what was found; no MX-less success.
        using var other = System.Security.Cryptography.RSA.Create(2048);
        var wrongKey = "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(other.ExportSubjectPublicKeyInfo());
        await dns.SetRecordsAsync([
            DnsRecord.Txt(dkim.Name, wrongKey),
            DnsRecord.Mx("bounce." + domain, "mx.elsewhere.test"),
            DnsRecord.Txt("bounce." + domain, "v=spf1 include:_spf.elsewhere.test -all"),
        ]);
        var wrong = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.Equal(SenderDomainStatuses.Failed, wrong.Status);
        Assert.Equal((DnsRecordStatuses.Wrong, wrongKey), (Record(wrong, DnsRecordPurposes.Dkim).Status, Record(wrong, DnsRecordPurposes.Dkim).Found.Single()));
        Assert.Equal((DnsRecordStatuses.Wrong, "10 mx.elsewhere.test"), (Record(wrong, DnsRecordPurposes.ReturnPathMx).Status, Record(wrong, DnsRecordPurposes.ReturnPathMx).Found.Single()));
        Assert.Equal(DnsRecordStatuses.Wrong, Record(wrong, DnsRecordPurposes.ReturnPathSpf).Status);
        Assert.Contains(SpfInclude, Record(wrong, DnsRecordPurposes.ReturnPathSpf).Detail, StringComparison.Ordinal);
        Assert.Equal(DnsRecordStatuses.Missing, Record(wrong, DnsRecordPurposes.Dmarc).Status);

        // Everything as listed: verified.
        await dns.SetRecordsAsync(Published(created));
        var verified = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.True(verified.Status == SenderDomainStatuses.Verified, JsonSerializer.Serialize(verified.Records));
        Assert.All(verified.Records!, r => Assert.Equal(DnsRecordStatuses.Ok, r.Status));
        Assert.NotNull(verified.VerifiedAt);

        // A bulk job now goes out signed with the domain's key, with List-Id, Feedback-ID and a VERP envelope.
        var subject = "Signed " + Guid.NewGuid().ToString("N")[..8];
        using var jobCreated = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject,
            "<p>Hi {{ email }}</p>", "Hi {{ email }}", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(jobCreated, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        var bulk = await smtp.WaitForAsync(subscriber);
        var bulkMime = MimeKit.MimeMessage.Load(new MemoryStream(bulk.Raw));
        Assert.Equal(subject, bulkMime.Subject);
        await AssertDkimPassesAsync(bulk, dns, domain, today);
        Assert.Equal($"<{Guid.Parse(tenant.ListId):N}.{domain}>", bulkMime.Headers["List-Id"]);
        Assert.Equal($"{Guid.Parse(job.Id):N}:{Guid.Parse(tenant.TenantId):N}:bulk:newsletter", bulkMime.Headers["Feedback-ID"]);
        var returnPath = engine.Services.GetRequiredService<ReturnPath>();
        Assert.True(returnPath.TryParse(bulk.MailFrom, out var bulkTarget), bulk.MailFrom);
        Assert.NotNull(bulkTarget.RecipientId);
        AssertAligned(bulk.MailFrom, bulkMime, domain);

        // Transactional mail from the verified domain: signed too, Feedback-ID, the task's VERP address.
        var sent = await SendTransactionalAsync(tx, domain, subscriber, "receipt");
        Assert.Equal(EmailTaskStatuses.Queued, sent.Status);
        var receipt = await WaitAsync(() => smtp.Received().FirstOrDefault(m => MimeKit.MimeMessage.Load(new MemoryStream(m.Raw)).Subject == "receipt"));
        var receiptMime = MimeKit.MimeMessage.Load(new MemoryStream(receipt.Raw));
        await AssertDkimPassesAsync(receipt, dns, domain, today);
        Assert.Equal($"{Guid.Parse(tenant.TenantId):N}:transactional:newsletter", receiptMime.Headers["Feedback-ID"]);
        Assert.True(returnPath.TryParse(receipt.MailFrom, out var taskTarget), receipt.MailFrom);
        Assert.Equal(Guid.ParseExact(sent.TaskId, "N"), taskTarget.TaskId);
        AssertAligned(receipt.MailFrom, receiptMime, domain);

        // A job accepted while the domain was verified, due a little later.
        var dueAt = DateTimeOffset.UtcNow.AddSeconds(15).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var laterTx = await SendTransactionalAsync(tx, domain, subscriber, "later",
            DateTimeOffset.UtcNow.AddSeconds(15).ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(EmailTaskStatuses.Scheduled, laterTx.Status);
        using var laterCreated = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Later", null, "hi", dueAt), StackFixture.Json);
        var laterJob = await StackFixture.ReadAsync<SendJobResponse>(laterCreated, HttpStatusCode.Created);

        // The DKIM record removed: the next check fails the domain and new bulk jobs are refused again.
        await dns.SetRecordsAsync(Published(created, r => r.Purpose != DnsRecordPurposes.Dkim));
        var lost = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.Equal((SenderDomainStatuses.Failed, DnsRecordStatuses.Missing), (lost.Status, Record(lost, DnsRecordPurposes.Dkim).Status));
        using (var refusedAgain = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Refused", null, "hi", null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refusedAgain.StatusCode);
        }
        // The job accepted before starts now: the runner checks again and pauses it for an operator, sending nothing.
        var paused = await StackFixture.WaitForJobAsync(se, laterJob.Id, j => j.Status == SendJobStatuses.Paused);
        Assert.Contains(domain, paused.PausedReason, StringComparison.Ordinal);
        Assert.Null(paused.ResumeAt);
        Assert.DoesNotContain(smtp.Received(), m => MimeKit.MimeMessage.Load(new MemoryStream(m.Raw)).Subject == "Later");
        // A transactional task accepted before the domain failed is rejected when it is dispatched (checked again there).
        var task = await WaitAsync(async () =>
        {
            var t = JsonDocument.Parse(await tx.GetStringAsync($"api/v1/email/{laterTx.TaskId}")).RootElement;
            return t.GetProperty("status").GetString() == EmailTaskStatuses.Rejected ? t.Clone() : (JsonElement?)null;
        });
        Assert.Equal(EmailRejectReasons.InvalidSender, task.GetProperty("reject_reason").GetString());
        Assert.DoesNotContain(smtp.Received(), m => MimeKit.MimeMessage.Load(new MemoryStream(m.Raw)).Subject == "later");
        // And new transactional mail is refused at once.
        var lateTx = await SendTransactionalAsync(tx, domain, subscriber, "late");
        Assert.Equal((EmailTaskStatuses.Rejected, EmailRejectReasons.InvalidSender), (lateTx.Status, lateTx.RejectReason));
    }

    [Fact]
    public async Task Rotation_signs_with_the_new_key_and_keeps_the_old_selector_listed_for_seven_days_and_other_tenants_get_404()
    {
        var domain = NewDomain();
        await using var dns = await DnsmasqServer.StartAsync();
        await using var smtp = await RecordingSmtpServer.StartAsync();
        await using var engine = CreateEngine(dns.EndPoint, smtp, domain, await stack.CreateSendEngineDatabaseAsync());
        var tenant = await stack.CreateTenantAsync();
        var intruder = await stack.CreateTenantAsync();
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var otherSe = engine.CreateClient();
        otherSe.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(intruder));

        var created = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));
        var first = created.DkimSelector!;
        var rotated = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/dkim/rotate", new { });
        Assert.NotEqual(first, rotated.DkimSelector);
        Assert.StartsWith(first, rotated.DkimSelector, StringComparison.Ordinal); // same day: a letter after the date
        var dkims = rotated.Records!.Where(r => r.Purpose == DnsRecordPurposes.Dkim).ToList();
        Assert.Equal([rotated.DkimSelector, first], dkims.Select(r => r.Selector));
        Assert.Equal([true, false], dkims.Select(r => r.Required));
        Assert.Null(dkims[0].RetiresAt);
        Assert.InRange(dkims[1].RetiresAt!.Value - DateTimeOffset.UtcNow, TimeSpan.FromDays(7) - TimeSpan.FromMinutes(5), TimeSpan.FromDays(7));
        Assert.NotEqual(dkims[0].Value, dkims[1].Value);

        // Both selectors are checked; with everything published the domain verifies and signs with the new key.
        await dns.SetRecordsAsync(Published(rotated));
        var verified = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.Equal(SenderDomainStatuses.Verified, verified.Status);
        Assert.All(verified.Records!.Where(r => r.Purpose == DnsRecordPurposes.Dkim), r => Assert.Equal(DnsRecordStatuses.Ok, r.Status));
        var subscriber = $"rot@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [subscriber]);
        using var jobCreated = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Rotated", null, "hi", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(jobCreated, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        await AssertDkimPassesAsync(await smtp.WaitForAsync(subscriber), dns, domain, rotated.DkimSelector!);

        // A day later the daily re-check finds the records gone and fails the domain.
        await dns.SetRecordsAsync([]);
        await using (var scope = engine.Services.CreateAsyncScope())
        {
            var sp = scope.ServiceProvider;
            var nextDay = new SenderDomainStore(sp.GetRequiredService<SendEngineDbContext>(), sp.GetRequiredService<IMemoryCache>(),
                sp.GetRequiredService<IOptions<SenderDomainOptions>>(), sp.GetRequiredService<DkimKeyProtector>(), sp.GetRequiredService<SenderDomainDns>(),
                new ShiftedClock(TimeSpan.FromDays(1)));
            await new SenderDomainRecheck(nextDay, Microsoft.Extensions.Logging.Abstractions.NullLogger<SenderDomainRecheck>.Instance).RunAsync(CancellationToken.None);
        }
        var rechecked = (await se.GetFromJsonAsync<SenderDomainResponse>($"api/sender-domains/{domain}", StackFixture.Json))!;
        Assert.Equal(SenderDomainStatuses.Failed, rechecked.Status);
        Assert.True(rechecked.LastCheckedAt > DateTimeOffset.UtcNow.AddHours(23), $"{rechecked.LastCheckedAt}");

        // Eight days later (the store's clock moved on): the old selector is no longer listed, and the sweep retires it.
        await using (var scope = engine.Services.CreateAsyncScope())
        {
            var sp = scope.ServiceProvider;
            var later = new SenderDomainStore(sp.GetRequiredService<SendEngineDbContext>(), sp.GetRequiredService<IMemoryCache>(),
                sp.GetRequiredService<IOptions<SenderDomainOptions>>(), sp.GetRequiredService<DkimKeyProtector>(), sp.GetRequiredService<SenderDomainDns>(),
                new ShiftedClock(TimeSpan.FromDays(8)));
            var afterWeek = await later.GetAsync(Guid.Parse(tenant.TenantId), domain, CancellationToken.None);
            Assert.Equal([rotated.DkimSelector], afterWeek!.Records!.Where(r => r.Purpose == DnsRecordPurposes.Dkim).Select(r => r.Selector));
            Assert.Equal(1, await later.RetireKeysAsync(CancellationToken.None));
        }

        // Another tenant's domain is a 404 on every route.
        await StackFixture.AssertAllNotFoundAsync(otherSe,
            () => new(HttpMethod.Get, $"api/sender-domains/{domain}"),
            () => new(HttpMethod.Post, $"api/sender-domains/{domain}/verify"),
            () => new(HttpMethod.Post, $"api/sender-domains/{domain}/dkim/rotate"),
            () => new(HttpMethod.Delete, $"api/sender-domains/{domain}"));
        Assert.Equal(SenderDomainStatuses.Failed, (await se.GetFromJsonAsync<SenderDomainResponse>($"api/sender-domains/{domain}", StackFixture.Json))!.Status);
    }

    [Fact]
    public async Task A_job_with_its_own_from_email_is_signed_with_that_domains_key_and_its_return_path_and_unverified_ones_are_refused()
    {
        // The platform's from address is on a domain the tenant never verified: only the job's own from can send.
        var platformDomain = NewDomain();
        var domain = NewDomain();
        var unverified = NewDomain();
        await using var dns = await DnsmasqServer.StartAsync();
        await using var smtp = await RecordingSmtpServer.StartAsync();
        await using var engine = CreateEngine(dns.EndPoint, smtp, platformDomain, await stack.CreateSendEngineDatabaseAsync());
        var tenant = await stack.CreateTenantAsync();
        var subscriber = $"from@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [subscriber]);
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var created = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));
        await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(unverified));
        await dns.SetRecordsAsync(Published(created));
        Assert.Equal(SenderDomainStatuses.Verified, (await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { })).Status);

        // A bad address or a multi-line name is a validation error; a registered but unverified domain a 422 naming it.
        using (var bad = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Bad", null, "hi", null,
            FromEmail: "not an address", FromName: "Two\nlines"), StackFixture.Json))
        {
            var errors = JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.True(errors.TryGetProperty("from_email", out _) && errors.TryGetProperty("from_name", out _), errors.ToString());
        }
        foreach (var from in new[] { "news@" + unverified, "news@" + NewDomain() })
        {
            using var refused = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Refused", null, "hi", null,
                FromEmail: from), StackFixture.Json);
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.UnprocessableEntity, body);
            Assert.Equal(from.Split('@')[1], JsonDocument.Parse(body).RootElement.GetProperty("domain").GetString());
        }
        // Without a from of its own the job would go out from the platform's unverified domain: refused as before.
        using (var platform = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Platform", null, "hi", null), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, platform.StatusCode);
        }

        // From the verified domain: stored, shown, and the message carries it, signed d= that domain, VERP under bounce.{domain}.
        var subject = "Own from " + Guid.NewGuid().ToString("N")[..8];
        var job = await StackFixture.ReadAsync<SendJobResponse>(await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject,
            "<p>Hi {{ email }}</p>", "Hi {{ email }}", null, FromEmail: "Letters@" + domain.ToUpperInvariant(), FromName: "The Letters"), StackFixture.Json), HttpStatusCode.Created);
        Assert.Equal(("Letters@" + domain, "The Letters"), (job.FromEmail, job.FromName));
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(("Letters@" + domain, "The Letters"), (done.FromEmail, done.FromName));
        Assert.Contains("\"from_email\":", await se.GetStringAsync($"api/send-jobs/{job.Id}"), StringComparison.Ordinal);
        var mail = await smtp.WaitForAsync(subscriber);
        var mime = MimeKit.MimeMessage.Load(new MemoryStream(mail.Raw));
        var fromHeader = (MimeKit.MailboxAddress)mime.From.Single();
        Assert.Equal(("The Letters", "Letters@" + domain), (fromHeader.Name, fromHeader.Address));
        await AssertDkimPassesAsync(mail, dns, domain, created.DkimSelector!);
        AssertAligned(mail.MailFrom, mime, domain);
        Assert.True(engine.Services.GetRequiredService<ReturnPath>().TryParse(mail.MailFrom, out var target) && target.RecipientId is not null, mail.MailFrom);
        Assert.Equal($"<{Guid.Parse(tenant.ListId):N}.{domain}>", mime.Headers["List-Id"]);
        Assert.Equal($"{Guid.Parse(job.Id):N}:{Guid.Parse(tenant.TenantId):N}:bulk:newsletter", mime.Headers["Feedback-ID"]);
        Assert.EndsWith("@" + domain, mime.MessageId, StringComparison.Ordinal);

        // The test send of the same from is signed with the domain's key too; from an unverified domain it is refused.
        var to = $"qa@{StackFixture.UniqueDomain()}";
        var test = await StackFixture.ReadAsync<TestSendResponse>(await se.PostAsJsonAsync("api/send-jobs/test-send",
            new ComposeRequest("Try", null, "hi", null, to, FromEmail: "letters@" + domain, FromName: "The Letters"), StackFixture.Json), HttpStatusCode.OK);
        Assert.Equal("sent", test.Outcome);
        var tried = await smtp.WaitForAsync(to);
        await AssertDkimPassesAsync(tried, dns, domain, created.DkimSelector!);
        Assert.Equal("letters@" + domain, ((MimeKit.MailboxAddress)MimeKit.MimeMessage.Load(new MemoryStream(tried.Raw)).From.Single()).Address);
        using (var refusedTest = await se.PostAsJsonAsync("api/send-jobs/test-send", new ComposeRequest("Try", null, "hi", null, to, FromEmail: "x@" + unverified), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refusedTest.StatusCode);
        }
    }

    [Fact]
    public async Task A_subdomain_without_its_own_DMARC_record_is_covered_by_its_organisational_domains()
    {
        var organisational = NewDomain();
        var domain = "news.mail." + organisational;
        await using var dns = await DnsmasqServer.StartAsync();
        await using var smtp = await RecordingSmtpServer.StartAsync();
        await using var engine = CreateEngine(dns.EndPoint, smtp, domain, await stack.CreateSendEngineDatabaseAsync());
        var tenant = await stack.CreateTenantAsync();
        using var se = engine.CreateClient();
        se.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        var created = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest(domain));

        // The required records on the subdomain, the DMARC policy only on the organisational domain (two labels up):
        // found by walking up, reported ok with where it was found.
        var policy = "v=DMARC1; p=quarantine; rua=mailto:dmarc@" + organisational;
        await dns.SetRecordsAsync([.. Published(created, r => r.Purpose != DnsRecordPurposes.Dmarc), DnsRecord.Txt("_dmarc." + organisational, policy)]);
        var checkedUp = await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { });
        Assert.Equal(SenderDomainStatuses.Verified, checkedUp.Status);
        var dmarc = Record(checkedUp, DnsRecordPurposes.Dmarc);
        Assert.Equal(("_dmarc." + domain, DnsRecordStatuses.Ok, policy), (dmarc.Name, dmarc.Status, dmarc.Found.Single()));
        Assert.Contains("_dmarc." + organisational, dmarc.Detail, StringComparison.Ordinal);

        // The subdomain's own record wins over the organisational domain's.
        var own = "v=DMARC1; p=none";
        await dns.SetRecordsAsync([.. Published(created, r => r.Purpose != DnsRecordPurposes.Dmarc), DnsRecord.Txt("_dmarc." + organisational, policy),
            DnsRecord.Txt("_dmarc." + domain, own)]);
        dmarc = Record(await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { }), DnsRecordPurposes.Dmarc);
        Assert.Equal((DnsRecordStatuses.Ok, own), (dmarc.Status, dmarc.Found.Single()));
        Assert.Null(dmarc.Detail);

        // None on any level (the walk stops below the top-level label): missing.
        await dns.SetRecordsAsync(Published(created, r => r.Purpose != DnsRecordPurposes.Dmarc));
        dmarc = Record(await StackFixture.PostAsync<SenderDomainResponse>(se, $"api/sender-domains/{domain}/verify", new { }), DnsRecordPurposes.Dmarc);
        Assert.Equal(DnsRecordStatuses.Missing, dmarc.Status);
    }

    private static async Task<EmailTaskResult> SendTransactionalAsync(HttpClient tx, string domain, string to, string subject, string? sendAt = null)
    {
        using var response = await tx.PostAsJsonAsync("api/v1/email", new
        {
            message = new { from_email = "receipts@" + domain, subject, text = "Thanks", to = new[] { new { email = to } } },
            send_at = sendAt,
        });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonSerializer.Deserialize<SendEmailResponse>(body, StackFixture.Json)!.Tasks.Single();
    }

    internal static async Task AssertDkimPassesAsync(RecordedMail mail, DnsmasqServer dns, string domain, string selector)
    {
        var (passed, output) = await DkimVerifier.VerifyAsync(mail.Raw, dns.Host, dns.Port);
        Assert.True(passed, output + "\n" + mail.Text);
        Assert.Contains($"d={domain} s={selector}", output, StringComparison.Ordinal);
        Assert.Contains("c=relaxed/relaxed", output, StringComparison.Ordinal);
        var signed = Regex.Match(output, "h=([^ ]*)").Groups[1].Value.ToLowerInvariant().Split(':');
        foreach (var h in new[] { "from", "to", "subject", "date", "message-id", "mime-version", "content-type" })
        {
            Assert.Contains(h, signed);
        }
    }

    /// <summary>
    /// DMARC's relaxed alignment, as a receiver judges it: the envelope domain (SPF) and the DKIM d= share the From
    /// domain's organisational domain. Here the return path is a subdomain of the From domain and d= is the From domain.
    /// </summary>
    private static void AssertAligned(string mailFrom, MimeKit.MimeMessage message, string domain)
    {
        var from = ((MimeKit.MailboxAddress)message.From.Single()).Domain;
        Assert.Equal(domain, from);
        var envelopeDomain = mailFrom[(mailFrom.LastIndexOf('@') + 1)..];
        Assert.Equal("bounce." + domain, envelopeDomain);
        Assert.Equal(OrganisationalDomain(from), OrganisationalDomain(envelopeDomain));
        var dkim = message.Headers[MimeKit.HeaderId.DkimSignature] ?? "";
        Assert.Equal(from, Regex.Match(dkim, @"d=([^;\s]+)").Groups[1].Value);
    }

    /// <summary>The registrable domain under the test TLDs (one label below ".tenant.test"), as a public-suffix lookup would give.</summary>
    private static string OrganisationalDomain(string host)
    {
        var labels = host.Split('.');
        return string.Join('.', labels[^3..]);
    }

    private static async Task<JsonElement> WaitAsync(Func<Task<JsonElement?>> probe)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (await probe() is { } found)
            {
                return found;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException("waited 60 s");
    }

    private static async Task<T> WaitAsync<T>(Func<T?> probe) where T : class
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (probe() is { } found)
            {
                return found;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException("waited 60 s");
    }

    private sealed class ShiftedClock(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
    }
}
