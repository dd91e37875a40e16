using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Newsletter.Contracts;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.Contracts.ProviderCredentials;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>
/// Issue 15, part 1: tenants' own SMTP relays, Tencent SES accounts and IMAP mailboxes, created and then verified live
/// against real servers on loopback (aiosmtpd with STARTTLS and AUTH, Dovecot, the Tencent stand-in), and a tenant's
/// mail going through its own verified relay.
/// </summary>
public sealed class ProviderCredentialTests(StackFixture stack)
{
    private const string Manage = Scopes.Webhooks + " " + Scopes.SendWrite + " " + Scopes.SendRead;
    /// <summary>Every check in these tests must answer within this (connect bounded by 3 s, each step by 6 s, the whole by 15 s).</summary>
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(17);

    [Fact]
    public async Task An_smtp_relay_with_starttls_and_auth_is_verified_live_and_wrong_password_closed_port_bad_certificate_and_unknown_host_are_clear_failures()
    {
        using var trusted = TestCertificate.Create();
        using var untrusted = TestCertificate.Create();
        await using var relay = await FaultSmtpServer.StartAsync("--password", "relay-secret", "--tls-cert", trusted.CertPath, "--tls-key", trusted.KeyPath);
        await using var impostor = await FaultSmtpServer.StartAsync("--password", "relay-secret", "--tls-cert", untrusted.CertPath, "--tls-key", untrusted.KeyPath);
        var tenant = await stack.CreateTenantAsync();
        var (engine, db) = await StartAsync(trusted.CertPath);
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Manage);

        // Created unverified, then verified: TLS, EHLO, AUTH, with the server's own replies kept.
        var good = await CreateAsync(se, Smtp("relay", relay.Host, relay.Port, "relay-secret"));
        Assert.Equal(VerificationStatuses.Unverified, good.Verification.Status);
        Assert.False(good.InUse);
        var verified = await VerifyAsync(se, good.CredentialId);
        Assert.True(verified.Verification.Status == VerificationStatuses.Verified, verified.Verification.Detail);
        Assert.NotNull(verified.Verification.CheckedAt);
        Assert.Contains("over Tls", verified.Verification.Detail);
        Assert.Contains("AUTH accepted for sender", verified.Verification.Detail);
        Assert.Contains("235", verified.Verification.Detail); // the server's own reply to AUTH
        Assert.Contains("STARTTLS", verified.Verification.Detail); // its EHLO
        // The password is nowhere in what the API answers, nor in clear in the database.
        var raw = await se.GetStringAsync($"api/provider-credentials/{good.CredentialId}");
        Assert.DoesNotContain("relay-secret", raw);
        Assert.DoesNotContain("password", raw);
        var stored = await TestSql.ScalarAsync<byte[]>(db, "SELECT secret FROM provider_credentials WHERE id = $1", Guid.Parse(good.CredentialId));
        Assert.True(stored.Length > 16);
        Assert.DoesNotContain("relay-secret", System.Text.Encoding.UTF8.GetString(stored));
        Assert.True(await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM data_protection_keys") >= 1, "the key ring is kept in Send Engine's database");

        // Wrong password: the server's 535.
        var wrong = await VerifyAsync(se, (await CreateAsync(se, Smtp("wrong password", relay.Host, relay.Port, "not-it"))).CredentialId);
        Assert.Equal(VerificationStatuses.Failed, wrong.Verification.Status);
        Assert.StartsWith("AUTH refused: 535", wrong.Verification.Detail);

        // Closed port: refused at once.
        var closed = await VerifyAsync(se, (await CreateAsync(se, Smtp("closed", "127.0.0.1", FreePort.Get(), "relay-secret"))).CredentialId);
        Assert.Equal(VerificationStatuses.Failed, closed.Verification.Status);
        Assert.StartsWith("connection refused", closed.Verification.Detail);

        // A certificate Send Engine does not trust: refused, and said why (not a blanket bypass: the trusted file covers only its own certificate).
        var impostorCheck = await VerifyAsync(se, (await CreateAsync(se, Smtp("impostor", impostor.Host, impostor.Port, "relay-secret"))).CredentialId);
        Assert.Equal(VerificationStatuses.Failed, impostorCheck.Verification.Status);
        Assert.StartsWith("certificate refused: the certificate is not trusted", impostorCheck.Verification.Detail);

        // A host name that does not resolve.
        var unknown = await VerifyAsync(se, (await CreateAsync(se, Smtp("unknown", "relay.no-such-host.invalid", 587, "relay-secret"))).CredentialId);
        Assert.Equal(VerificationStatuses.Failed, unknown.Verification.Status);
        Assert.Contains("does not resolve", unknown.Verification.Detail);

        // A changed password makes it unverified again (until checked), and so not used for mail.
        var changed = await PatchAsync(se, good.CredentialId, new UpdateProviderCredentialRequest(Password: "relay-secret", Active: true));
        Assert.Equal(VerificationStatuses.Unverified, changed.Verification.Status);
        Assert.True(changed.Active);
        Assert.False(changed.InUse);
        Assert.True((await VerifyAsync(se, good.CredentialId)).InUse);
        var list = await se.GetFromJsonAsync<ProviderCredentialList>("api/provider-credentials", StackFixture.Json);
        Assert.Equal(5, list!.Items.Count);
        Assert.Single(list.Items, c => c.Active);
    }

    [Fact]
    public async Task A_tenants_send_job_goes_through_its_own_verified_relay_and_not_the_platform_relay()
    {
        using var cert = TestCertificate.Create();
        await using var relay = await FaultSmtpServer.StartAsync("--password", "own-relay", "--tls-cert", cert.CertPath, "--tls-key", cert.KeyPath);
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(3, "own");
        var (engine, _) = await StartAsync(cert.CertPath);
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Manage);
        var created = await CreateAsync(se, Smtp("own relay", relay.Host, relay.Port, "own-relay") with { Active = true });
        Assert.True((await VerifyAsync(se, created.CredentialId)).InUse);

        var jobId = await RunJobAsync(se, tenant, "Through our relay");

        var accepted = relay.Accepted.Select(a => a.Recipient).ToList();
        Assert.Equal(emails.Order(), accepted.Order());
        var platform = await stack.Mail.ListAsync(TestContext.Current.CancellationToken);
        Assert.DoesNotContain(platform, m => m.Subject == "Through our relay" && m.To.Any(emails.Contains));
        Assert.NotNull(jobId);
    }

    [Fact]
    public async Task A_tencent_account_is_verified_with_a_signed_read_only_call_a_wrong_key_is_refused_and_the_tenants_mail_uses_it()
    {
        await using var tencent = new TencentSesStandIn("AKIDtenant0001example", "tenant-secret-key");
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(2, "tc");
        var (engine, _) = await StartAsync(null);
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Manage);

        var wrong = await CreateAsync(se, new CreateProviderCredentialRequest(ProviderKinds.Tencent, "wrong key", SecretId: "AKIDtenant0001example",
            SecretKey: "not-the-key", Region: "ap-hongkong", Endpoint: tencent.Url));
        var refused = await VerifyAsync(se, wrong.CredentialId);
        Assert.Equal(VerificationStatuses.Failed, refused.Verification.Status);
        Assert.Contains("AuthFailure.SignatureFailure", refused.Verification.Detail);

        var account = await CreateAsync(se, new CreateProviderCredentialRequest(ProviderKinds.Tencent, "our account", SecretId: "AKIDtenant0001example",
            SecretKey: "tenant-secret-key", Region: "ap-hongkong", Endpoint: tencent.Url, Active: true));
        Assert.Equal("AKID…mple", account.SecretId);
        var ok = await VerifyAsync(se, account.CredentialId);
        Assert.True(ok.Verification.Status == VerificationStatuses.Verified, ok.Verification.Detail);
        Assert.Contains("sender.example", ok.Verification.Detail);
        Assert.True(ok.InUse);
        var check = Assert.Single(tencent.Calls, c => c.Action == "ListEmailIdentities" && c.SignatureValid);
        Assert.Equal("ap-hongkong", check.Region);

        await RunJobAsync(se, tenant, "Through Tencent");
        var sent = tencent.Calls.Where(c => c.Action == "SendEmail").ToList();
        Assert.Equal(emails.Order(), sent.Select(c => c.Destination[0]).Order());
        Assert.All(sent, c => Assert.True(c.SignatureValid));
    }

    [Fact]
    public async Task A_bounce_mailbox_is_verified_by_login_and_select_on_dovecot_and_a_wrong_password_or_untrusted_certificate_is_refused()
    {
        await using var dovecot = await DovecotServer.CreateAsync();
        var tenant = await stack.CreateTenantAsync();
        var (engine, _) = await StartAsync(dovecot.CertificatePath);
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Manage);

        async Task<BounceMailboxResponse> CreateMailboxAsync(string password, int port, string tls) =>
            await StackFixture.ReadAsync<BounceMailboxResponse>(await se.PostAsJsonAsync("api/bounce-mailboxes",
                new CreateBounceMailboxRequest(dovecot.Host, port, tls, dovecot.Username, password, null, null, null, null, Enabled: false), StackFixture.Json),
                HttpStatusCode.Created);
        async Task<BounceMailboxResponse> VerifyMailboxAsync(string id)
        {
            var sw = Stopwatch.StartNew();
            var response = await StackFixture.ReadAsync<BounceMailboxResponse>(await se.PostAsync($"api/bounce-mailboxes/{id}/verify", null), HttpStatusCode.OK);
            Assert.True(sw.Elapsed < Quick, $"the check took {sw.Elapsed}");
            return response;
        }

        var mailbox = await CreateMailboxAsync(dovecot.Password, dovecot.ImapPort, BounceMailboxTls.StartTls);
        Assert.Equal(VerificationStatuses.Unverified, mailbox.Verification!.Status);
        var ok = (await VerifyMailboxAsync(mailbox.MailboxId)).Verification!;
        Assert.True(ok.Status == VerificationStatuses.Verified, ok.Detail);
        Assert.Contains("SELECT INBOX: 0 messages", ok.Detail);
        Assert.Contains("Dovecot", ok.Detail); // its greeting

        var wrong = (await VerifyMailboxAsync((await CreateMailboxAsync("wrong-password", dovecot.ImapsPort, BounceMailboxTls.SslOnConnect)).MailboxId)).Verification!;
        Assert.Equal(VerificationStatuses.Failed, wrong.Status);
        Assert.StartsWith("LOGIN refused", wrong.Detail);

        // The same server through an engine that does not trust its certificate.
        var (strict, _) = await StartAsync(null);
        await using var _s = strict;
        using var strictSe = await stack.SendEngineClientAsync(strict, tenant, Manage);
        var created = await StackFixture.ReadAsync<BounceMailboxResponse>(await strictSe.PostAsJsonAsync("api/bounce-mailboxes",
            new CreateBounceMailboxRequest(dovecot.Host, dovecot.ImapsPort, BounceMailboxTls.SslOnConnect, dovecot.Username, dovecot.Password, null, null, null, null,
                Enabled: false), StackFixture.Json), HttpStatusCode.Created);
        var untrusted = (await StackFixture.ReadAsync<BounceMailboxResponse>(await strictSe.PostAsync($"api/bounce-mailboxes/{created.MailboxId}/verify", null),
            HttpStatusCode.OK)).Verification!;
        Assert.Equal(VerificationStatuses.Failed, untrusted.Status);
        Assert.StartsWith("certificate refused", untrusted.Detail);
    }

    [Fact]
    public async Task Another_tenants_credential_is_a_404_viewers_only_read_bad_input_is_a_400_and_private_hosts_are_refused()
    {
        var tenant = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant, Manage));
        using var otherSe = stack.SendEngineClient(await stack.SendTokenAsync(other, Manage));
        using var reader = stack.SendEngineClient(await stack.SendTokenAsync(tenant, Scopes.SendRead));

        // The shared engine does not allow private networks: loopback and private addresses are refused at creation, as is tls none.
        foreach (var host in new[] { "127.0.0.1", "10.1.2.3", "localhost" })
        {
            using var refused = await se.PostAsJsonAsync("api/provider-credentials", Smtp("private", host, 587, "pw"), StackFixture.Json);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("\"host\"", await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }
        using (var plain = await se.PostAsJsonAsync("api/provider-credentials", Smtp("plain", "93.184.215.14", 25, "pw") with { Tls = SmtpTlsModes.None }, StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, plain.StatusCode);
            Assert.Equal("application/problem+json", plain.Content.Headers.ContentType?.MediaType);
        }
        using (var badKind = await se.PostAsJsonAsync("api/provider-credentials", new CreateProviderCredentialRequest("pop3", "x"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badKind.StatusCode);
            Assert.Contains("\"kind\"", await badKind.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }
        using (var foreignEndpoint = await se.PostAsJsonAsync("api/provider-credentials", new CreateProviderCredentialRequest(ProviderKinds.Tencent, "t",
                   SecretId: "AKID", SecretKey: "k", Endpoint: "http://169.254.169.254"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, foreignEndpoint.StatusCode);
            Assert.Contains("\"endpoint\"", await foreignEndpoint.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }

        var created = await CreateAsync(se, Smtp("public relay", "93.184.215.14", 587, "pw"));
        Assert.Equal(HttpStatusCode.NotFound, (await otherSe.GetAsync($"api/provider-credentials/{created.CredentialId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await otherSe.PostAsync($"api/provider-credentials/{created.CredentialId}/verify", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await otherSe.DeleteAsync($"api/provider-credentials/{created.CredentialId}")).StatusCode);
        Assert.Empty((await otherSe.GetFromJsonAsync<ProviderCredentialList>("api/provider-credentials", StackFixture.Json))!.Items);

        // A read-only token sees the credential and its check, and changes nothing.
        var seen = Assert.Single((await reader.GetFromJsonAsync<ProviderCredentialList>("api/provider-credentials", StackFixture.Json))!.Items);
        Assert.Equal(created.CredentialId, seen.CredentialId);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync($"api/provider-credentials/{created.CredentialId}/verify", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync($"api/provider-credentials/{created.CredentialId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync("api/provider-credentials", Smtp("x", "93.184.215.15", 587, "pw"), StackFixture.Json)).StatusCode);

        // Operators manage any tenant's credentials.
        using var admin = stack.SendEngineClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var listed = await admin.GetFromJsonAsync<ProviderCredentialList>($"admin/tenants/{tenant.TenantId}/provider-credentials", StackFixture.Json);
        Assert.Equal(created.CredentialId, Assert.Single(listed!.Items).CredentialId);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"admin/tenants/{tenant.TenantId}/provider-credentials/{created.CredentialId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await se.GetAsync($"api/provider-credentials/{created.CredentialId}")).StatusCode);
    }

    // ------------------------------------------------------------------ helpers

    private static CreateProviderCredentialRequest Smtp(string name, string host, int port, string password) =>
        new(ProviderKinds.Smtp, name, host, port, SmtpTlsModes.StartTls, "sender", password);

    /// <summary>A Send Engine of its own that allows loopback providers and trusts <paramref name="trustedCertificate"/>, with short check timeouts.</summary>
    private Task<(SendEngineFactory Engine, string Db)> StartAsync(string? trustedCertificate)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ProviderCredentials:AllowPrivateNetworks"] = "true",
            ["ProviderCredentials:AllowEndpointOverride"] = "true",
            ["ProviderCredentials:ConnectTimeout"] = "00:00:03",
            // Dovecot answers a wrong password after its auth_failure_delay (2 s).
            ["ProviderCredentials:CommandTimeout"] = "00:00:06",
            ["ProviderCredentials:VerifyTimeout"] = "00:00:15",
            ["BounceMailboxes:AllowPrivateNetworks"] = "true",
        };
        if (trustedCertificate is not null)
        {
            settings["ProviderCredentials:TrustedCertificates:0"] = trustedCertificate;
        }
        return stack.StartSendEngineAsync(settings);
    }

    private static async Task<ProviderCredentialResponse> CreateAsync(HttpClient se, CreateProviderCredentialRequest request) =>
        await StackFixture.ReadAsync<ProviderCredentialResponse>(await se.PostAsJsonAsync("api/provider-credentials", request, StackFixture.Json), HttpStatusCode.Created);

    private static async Task<ProviderCredentialResponse> PatchAsync(HttpClient se, string id, UpdateProviderCredentialRequest request) =>
        await StackFixture.ReadAsync<ProviderCredentialResponse>(await se.PatchAsJsonAsync($"api/provider-credentials/{id}", request, StackFixture.Json), HttpStatusCode.OK);

    private static async Task<ProviderCredentialResponse> VerifyAsync(HttpClient se, string id)
    {
        var sw = Stopwatch.StartNew();
        var response = await StackFixture.ReadAsync<ProviderCredentialResponse>(await se.PostAsync($"api/provider-credentials/{id}/verify", null), HttpStatusCode.OK);
        Assert.True(sw.Elapsed < Quick, $"the check took {sw.Elapsed}: {response.Verification.Detail}");
        return response;
    }

    private static async Task<string> RunJobAsync(HttpClient se, TestTenant tenant, string subject)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "hello", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status is SendJobStatuses.Completed or SendJobStatuses.Paused or SendJobStatuses.Failed);
        Assert.True(done.Status == SendJobStatuses.Completed, $"job {done.Status}: {done}");
        return job.Id;
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, as PEM files in a temp directory.</summary>
    private sealed class TestCertificate : IDisposable
    {
        private readonly string _dir;

        private TestCertificate(string dir) => _dir = dir;

        public string CertPath => Path.Combine(_dir, "cert.pem");
        public string KeyPath => Path.Combine(_dir, "key.pem");

        public static TestCertificate Create()
        {
            var dir = Directory.CreateTempSubdirectory("relay-cert-").FullName;
            using var key = RSA.Create(2048);
            var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("localhost");
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
            File.WriteAllText(Path.Combine(dir, "cert.pem"), cert.ExportCertificatePem());
            File.WriteAllText(Path.Combine(dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
            return new TestCertificate(dir);
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
