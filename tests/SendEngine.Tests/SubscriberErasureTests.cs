using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>
/// Issue 11 part 5: export and erasure of an address across both services. A Member Center of its own (own database, so
/// no other Member Center's queue touches its rows) calls a Send Engine process on a fixed port, which a test can kill and
/// start again on the same port.
/// </summary>
[LongRunning(204)]
public sealed class SubscriberErasureTests(StackFixture stack)
{
    /// <summary>Privacy:AddressHashKey of appsettings.Development.json, which the test hosts run with.</summary>
    private const string DevelopmentHashKey = "development-only-address-hash-key-0123456789";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The documented keyed hash, computed here independently of the services' code.</summary>
    private static string Marker(string address) =>
        "erased:" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(DevelopmentHashKey), Encoding.UTF8.GetBytes(address.Trim().ToLowerInvariant())));

    private sealed class Pair(RestartableMemberCenter mc, SendEngineProcess se, int sePort, Dictionary<string, string?> seSettings,
        string mcDb, string seDb) : IAsyncDisposable
    {
        public RestartableMemberCenter Mc => mc;
        public SendEngineProcess Se { get; set; } = se;
        public int SePort => sePort;
        public Dictionary<string, string?> SeSettings => seSettings;
        public string McDb => mcDb;
        public string SeDb => seDb;

        public async ValueTask DisposeAsync()
        {
            await Se.DisposeAsync();
            await mc.DisposeAsync();
        }
    }

    private async Task<Pair> StartPairAsync()
    {
        var mcDb = await stack.Postgres.CreateDatabaseAsync("mc");
        var seDb = await stack.CreateSendEngineDatabaseAsync();
        var sePort = FreePort.Get();
        var mc = await RestartableMemberCenter.StartAsync(stack, mcDb, new Dictionary<string, string?>
        {
            ["SendEngine:BaseUrl"] = $"http://127.0.0.1:{sePort}",
            ["SendEngine:PollInterval"] = "00:00:00.200",
            ["SendEngine:RetryMaxDelay"] = "00:00:01",
        });
        var settings = mc.SendEngineSettings(stack, seDb);
        var se = await SendEngineProcess.StartAsync(settings, sePort);
        return new Pair(mc, se, sePort, settings, mcDb, seDb);
    }

    private sealed record Tenant(string TenantId, string ListId, string SiteToken, string SendToken);

    private static async Task<Tenant> CreateTenantAsync(RestartableMemberCenter mc, StackFixture stack)
    {
        using var admin = mc.Client(await mc.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var tenant = await StackFixture.PostAsync<TenantResponse>(admin, "admin/tenants", new CreateTenantRequest("Erasure"));
        var list = await StackFixture.PostAsync<MailingListResponse>(admin, $"admin/tenants/{tenant.TenantId}/lists", new CreateListRequest("Weekly"));
        var send = await StackFixture.PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.SendApi, "sender"));
        var site = await StackFixture.PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.TenantApi, "site"));
        return new Tenant(tenant.TenantId, list.ListId, await mc.TokenAsync(site.ClientId, site.ClientSecret),
            await mc.TokenAsync(send.ClientId, send.ClientSecret, Scopes.SendWrite + " " + Scopes.SendRead));
    }

    private static async Task SubscribeAsync(RestartableMemberCenter mc, Tenant t, string email)
    {
        using var site = mc.Client(t.SiteToken);
        var sub = await StackFixture.PostAsync<SubscribeResponse>(site, "newsletter/subscribe", new SubscribeRequest(t.ListId, email, new() { ["name"] = System.Text.Json.JsonSerializer.SerializeToElement("Ann") }));
        using var confirm = new HttpRequestMessage(HttpMethod.Get, "newsletter/confirm?token=" + sub.ConfirmToken);
        confirm.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await site.SendAsync(confirm);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task<SendJobResponse> RunJobAsync(SendEngineProcess se, Tenant t, string subject)
    {
        using var api = se.CreateClient();
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", t.SendToken);
        var job = await StackFixture.ReadAsync<SendJobResponse>(await api.PostAsJsonAsync("api/send-jobs",
            new CreateSendJobRequest(t.TenantId, t.ListId, "Weekly", subject, "<p>Hi {{ name }}</p>", "Hi {{ name }}", null), StackFixture.Json), HttpStatusCode.Created);
        return await StackFixture.WaitForJobAsync(api, job.Id, j => j.Status == SendJobStatuses.Completed);
    }

    private static Task WaitAsync(Func<Task<bool>> condition, string what) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(90), () => what + " within 90 s", TimeSpan.FromMilliseconds(200));

    /// <summary>Send Engine's part has landed: the request is done in Member Center's queue.</summary>
    private static Task WaitForSendEngineAsync(Pair pair, string kind) => WaitAsync(async () =>
        await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM send_engine_requests WHERE kind = $1 AND completed_at IS NULL", kind) == 0
        && await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM send_engine_requests WHERE kind = $1 AND outcome = 'done'", kind) > 0,
        $"Send Engine's {kind}");

    private static async Task<HttpResponseMessage> ExportAsync(RestartableMemberCenter mc, string token, string email)
    {
        using var site = mc.Client(token);
        return await site.GetAsync($"api/subscribers/{Uri.EscapeDataString(email)}/export");
    }

    [Fact]
    public async Task Export_holds_both_services_data_and_erasure_leaves_only_hashes_and_anonymised_proof()
    {
        await using var pair = await StartPairAsync();
        var mc = pair.Mc;
        var t = await CreateTenantAsync(mc, stack);
        var other = await CreateTenantAsync(mc, stack);
        var domain = StackFixture.UniqueDomain();
        var target = $"Ann.Reader@{domain}";
        var bystander = $"bob@{domain}";
        await SubscribeAsync(mc, t, target);
        await SubscribeAsync(mc, t, bystander);
        var job = await RunJobAsync(pair.Se, t, "Before erasure");
        using (var se = pair.Se.CreateClient())
        {
            se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", t.SendToken);
            (await se.PostAsJsonAsync("api/suppressions", new { email = target, reason = "manual" }, StackFixture.Json)).EnsureSuccessStatusCode();
        }

        var export = await StackFixture.ReadAsync<SubscriberExport>(await ExportAsync(mc, t.SiteToken, target.ToUpperInvariant()), HttpStatusCode.OK);
        Assert.Equal(target, export.Subscriber!.Email);
        Assert.Equal("confirmed", export.Subscriptions.Single().Status);
        Assert.Equal("Ann", export.Subscriptions.Single().Preferences["name"].GetString());
        Assert.Equal(["subscribe", "confirm"], export.ConsentTrail.Select(c => c.Action));
        Assert.All(export.ConsentTrail, c => Assert.Equal("127.0.0.1", c.IpAddress));
        var delivery = export.SendEngine.Deliveries.Single();
        Assert.Equal((job.Id, "sent", "Before erasure"), (delivery.JobId, delivery.Status, delivery.Subject));
        Assert.Equal("manual", export.SendEngine.Suppressions.Single().Reason);
        // Another tenant's subscriber, or an address nobody holds, is a 404; a malformed one a 400.
        Assert.Equal(HttpStatusCode.NotFound, (await ExportAsync(mc, other.SiteToken, target)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ExportAsync(mc, t.SiteToken, $"nobody@{domain}")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await ExportAsync(mc, t.SiteToken, "not-an-address")).StatusCode);
        using (var otherSite = mc.Client(other.SiteToken))
        {
            // Erasing it as another tenant touches nothing of this tenant's.
            Assert.Equal(HttpStatusCode.Accepted, (await otherSite.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}")).StatusCode);
        }
        await WaitForSendEngineAsync(pair, "erase");
        Assert.Equal(target, (await StackFixture.ReadAsync<SubscriberExport>(await ExportAsync(mc, t.SiteToken, target), HttpStatusCode.OK)).Subscriber!.Email);

        using var site = mc.Client(t.SiteToken);
        var subscriberId = await TestSql.ScalarAsync<Guid>(pair.McDb, "SELECT id FROM subscribers WHERE email_key = $1", target.ToLowerInvariant());
        using (var erased = await site.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}"))
        {
            var body = await StackFixture.ReadAsync<ErasureResponse>(erased, HttpStatusCode.Accepted);
            Assert.Equal(("erased", "pending"), (body.MemberCenter, body.SendEngine));
        }
        await WaitForSendEngineAsync(pair, "erase");

        // Member Center: no subscriber, consent kept as proof with the keyed hash and no IP, user agent or details.
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM subscribers WHERE id = $1", subscriberId));
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM subscriptions WHERE subscriber_id = $1", subscriberId));
        Assert.Equal(3L, await TestSql.ScalarAsync<long>(pair.McDb,
            "SELECT count(*) FROM consent_records WHERE subscriber_id = $1 AND ip_address IS NULL AND user_agent IS NULL AND details IS NULL AND subject_hash IS NOT NULL", subscriberId));
        Assert.Equal("erased", await TestSql.ScalarAsync<string>(pair.McDb, "SELECT action FROM consent_records WHERE subscriber_id = $1 ORDER BY id DESC LIMIT 1", subscriberId));
        Assert.Equal("erased", await TestSql.ScalarAsync<string>(pair.McDb, "SELECT change FROM subscription_changes WHERE subscriber_id = $1", subscriberId));
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM send_engine_requests WHERE email IS NOT NULL"));
        // Send Engine: the address is its keyed hash everywhere, and the suppression is the hashed one.
        var marker = Marker(target);
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE lower(email) = $1", target.ToLowerInvariant()));
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM suppressions WHERE email = $1", target.ToLowerInvariant()));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE email = $1 AND preferences = '{}'::jsonb AND status = 'sent'", marker));
        Assert.Equal("erased", await TestSql.ScalarAsync<string>(pair.SeDb, "SELECT reason FROM suppressions WHERE email = $1 AND tenant_id = $2", marker, Guid.Parse(t.TenantId)));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE email = $1", bystander));

        // What is left is the hashed suppression: the export says so and holds nothing else.
        var after = await StackFixture.ReadAsync<SubscriberExport>(await ExportAsync(mc, t.SiteToken, target), HttpStatusCode.OK);
        Assert.Null(after.Subscriber);
        Assert.Empty(after.Subscriptions);
        Assert.Empty(after.SendEngine.Deliveries);
        Assert.Equal("erased", after.SendEngine.Suppressions.Single().Reason);
        Assert.Equal(["subscribe", "confirm", "erased"], after.ConsentTrail.Select(c => c.Action));
        Assert.All(after.ConsentTrail, c => Assert.Null(c.IpAddress));

        // Idempotent: a second erasure answers the same and changes nothing more.
        using (var again = await site.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}"))
        {
            Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        }
        await WaitForSendEngineAsync(pair, "erase");
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM suppressions WHERE email = $1 AND tenant_id = $2", marker, Guid.Parse(t.TenantId)));
        Assert.Equal(3L, await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM consent_records WHERE subscriber_id = $1", subscriberId));
    }

    [Fact]
    public async Task Transactional_mail_is_exported_and_erased_with_the_rest_and_other_recipients_keep_theirs()
    {
        await using var pair = await StartPairAsync();
        var t = await CreateTenantAsync(pair.Mc, stack);
        var domain = StackFixture.UniqueDomain();
        var target = $"Tia.Reader@{domain}";
        var bystander = $"carl@{domain}";
        // A seed-003 request to both (the bystander in cc), as the transactional API stores it.
        var requestId = Guid.NewGuid();
        var message = $$"""
            {"subject": "Your receipt", "from_email": "shop@{{domain}}", "bcc_address": "{{target.ToUpperInvariant()}}",
             "to": [{"email": "{{target}}", "name": "Tia Reader", "type": "to"}, {"email": "{{bystander}}", "name": "Carl", "type": "cc"}],
             "merge_vars": [{"rcpt": "{{target}}", "vars": [{"name": "order", "content": "T-1"}]}, {"rcpt": "{{bystander}}", "vars": [{"name": "order", "content": "C-2"}]}],
             "recipient_metadata": [{"rcpt": "{{target}}", "values": {"customer": "tia-42"} }]}
            """;
        var response = $$"""{"request_id": "{{requestId}}", "tasks": [{"email": "{{target}}", "status": "queued"}, {"email": "{{bystander}}", "status": "queued"}]}""";
        await TestSql.ScalarAsync<int>(pair.SeDb, """
            INSERT INTO transactional_requests (id, tenant_id, message, metadata, response, created_at, completed_at)
            VALUES ($1, $2, $3, '{}'::jsonb, $4::jsonb, now(), now())
            """, requestId, Guid.Parse(t.TenantId), message, response);
        foreach (var (email, name, position) in new[] { (target, "Tia Reader", 0), (bystander, "Carl", 1) })
        {
            await TestSql.ScalarAsync<int>(pair.SeDb, """
                INSERT INTO transactional_tasks (id, request_id, tenant_id, position, email, email_key, name, type, status, attempts,
                                                 message_id, metadata, created_at, sent_at, finished_at, detail)
                VALUES ($1, $2, $3, $4, $5, lower($5), $6, 'to', 'sent', 1, $7, '{"customer": "x"}'::jsonb, now(), now(), now(), '250 OK')
                """, Guid.NewGuid(), requestId, Guid.Parse(t.TenantId), position, email, name, $"{Guid.NewGuid():N}@{domain}");
        }

        var export = await StackFixture.ReadAsync<SubscriberExport>(await ExportAsync(pair.Mc, t.SiteToken, target), HttpStatusCode.OK);
        var task = export.SendEngine.TransactionalTasks.Single();
        Assert.Equal((requestId.ToString(), "sent", "Your receipt"), (task.RequestId, task.Status, task.Subject));

        using (var site = pair.Mc.Client(t.SiteToken))
        {
            Assert.Equal(HttpStatusCode.Accepted, (await site.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}")).StatusCode);
        }
        await WaitForSendEngineAsync(pair, "erase");

        var marker = Marker(target);
        // Nowhere in transactional mail is the address left, in any case; its name and per-recipient data went with it.
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb,
            "SELECT count(*) FROM transactional_requests WHERE message::text ILIKE $1 OR response::text ILIKE $1 OR message::text LIKE '%Tia Reader%' OR message::text LIKE '%T-1%' OR message::text LIKE '%tia-42%'",
            $"%{target}%"));
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM transactional_tasks WHERE email ILIKE $1 OR name = 'Tia Reader'", target));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb,
            "SELECT count(*) FROM transactional_tasks WHERE email = $1 AND email_key = $1 AND status = 'sent' AND metadata = '{}'::jsonb AND detail IS NULL", marker));
        Assert.Equal(marker, await TestSql.ScalarAsync<string>(pair.SeDb, "SELECT message::jsonb->>'bcc_address' FROM transactional_requests WHERE id = $1", requestId));
        // The bystander's part of the same request is untouched.
        Assert.Equal("C-2", await TestSql.ScalarAsync<string>(pair.SeDb,
            "SELECT message::jsonb->'merge_vars'->0->'vars'->0->>'content' FROM transactional_requests WHERE id = $1", requestId));
        Assert.Equal("Carl", await TestSql.ScalarAsync<string>(pair.SeDb, "SELECT message::jsonb->'to'->1->>'name' FROM transactional_requests WHERE id = $1", requestId));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM transactional_tasks WHERE email = $1 AND name = 'Carl' AND detail = '250 OK'", bystander));
        var after = await StackFixture.ReadAsync<SubscriberExport>(await ExportAsync(pair.Mc, t.SiteToken, target), HttpStatusCode.OK);
        Assert.Empty(after.SendEngine.TransactionalTasks);
    }

    [Fact]
    public async Task Erasure_while_Send_Engine_is_down_answers_202_and_lands_when_it_is_back()
    {
        await using var pair = await StartPairAsync();
        var mc = pair.Mc;
        var t = await CreateTenantAsync(mc, stack);
        var target = $"outage@{StackFixture.UniqueDomain()}";
        await SubscribeAsync(mc, t, target);
        await RunJobAsync(pair.Se, t, "Before the outage");

        await pair.Se.KillAsync();
        using var site = mc.Client(t.SiteToken);
        using (var erased = await site.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}"))
        {
            var body = await StackFixture.ReadAsync<ErasureResponse>(erased, HttpStatusCode.Accepted);
            Assert.Equal("pending", body.SendEngine);
        }
        // Retried with backoff while Send Engine is down; the export cannot be complete, so it is a 503.
        await WaitAsync(async () => await TestSql.ScalarAsync<int>(pair.McDb, "SELECT max(attempts) FROM send_engine_requests WHERE completed_at IS NULL") >= 3,
            "three failed attempts");
        using (var export = await ExportAsync(mc, t.SiteToken, target))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, export.StatusCode);
            Assert.Equal("application/problem+json", export.Content.Headers.ContentType?.MediaType);
        }
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE email = $1", target));

        // Restarting Member Center keeps the queue (it is in PostgreSQL); Send Engine back on its port gets the erasure.
        await mc.StopAsync();
        await mc.StartAsync();
        await pair.Se.DisposeAsync();
        pair.Se = await SendEngineProcess.StartAsync(pair.SeSettings, pair.SePort);
        await WaitForSendEngineAsync(pair, "erase");
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE email = $1", target));
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM send_job_recipients WHERE email = $1", Marker(target)));
        Assert.Equal("erased", await TestSql.ScalarAsync<string>(pair.SeDb, "SELECT reason FROM suppressions WHERE email = $1", Marker(target)));
    }

    [Fact]
    public async Task A_new_subscribe_of_an_erased_address_lifts_the_hashed_suppression_and_it_is_mailed_again()
    {
        await using var pair = await StartPairAsync();
        var mc = pair.Mc;
        var t = await CreateTenantAsync(mc, stack);
        var target = $"back@{StackFixture.UniqueDomain()}";
        await SubscribeAsync(mc, t, target);
        using var site = mc.Client(t.SiteToken);
        (await site.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(target)}")).EnsureSuccessStatusCode();
        await WaitForSendEngineAsync(pair, "erase");
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM suppressions WHERE email = $1", Marker(target)));

        await SubscribeAsync(mc, t, target);
        await WaitForSendEngineAsync(pair, "lift_erasure");
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.SeDb, "SELECT count(*) FROM suppressions WHERE email = $1", Marker(target)));
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(pair.McDb, "SELECT count(*) FROM erased_addresses"));

        var done = await RunJobAsync(pair.Se, t, "Welcome back");
        Assert.Equal(1, done.Counts.Sent);
        await stack.Mail.WaitForMailAsync(m => m.To.Contains(target) && m.Subject == "Welcome back", TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task A_hashed_suppression_skips_the_address_in_a_job_and_the_tenant_can_lift_it_by_address()
    {
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(2, "hashed");
        // What an erasure leaves in Send Engine: the keyed hash, never the address.
        await using (var conn = new NpgsqlConnection(stack.SendEngineConnectionString))
        {
            await conn.OpenAsync(Ct);
            await using var cmd = new NpgsqlCommand("INSERT INTO suppressions (tenant_id, email, reason, source, created_at) VALUES ($1, $2, 'erased', 'erasure', now())", conn);
            cmd.Parameters.Add(new NpgsqlParameter { Value = Guid.Parse(tenant.TenantId) });
            cmd.Parameters.Add(new NpgsqlParameter { Value = Marker(emails[0]) });
            await cmd.ExecuteNonQueryAsync(Ct);
        }
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var job = await StackFixture.ReadAsync<SendJobResponse>(await se.PostAsJsonAsync("api/send-jobs",
            new CreateSendJobRequest(tenant.TenantId, tenant.ListId, "Weekly", "Hashed", "<p>x</p>", "x", null), StackFixture.Json, Ct), HttpStatusCode.Created);
        var done = await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal((1, 1), (done.Counts.Sent, done.Counts.Suppressed));
        var skipped = (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?status=suppressed", StackFixture.Json, Ct))!.Items.Single();
        Assert.Equal(emails[0], skipped.Email);
        Assert.Contains("erased", skipped.Detail);

        using var lifted = await se.DeleteAsync($"api/suppressions/{Uri.EscapeDataString(emails[0].ToUpperInvariant())}", Ct);
        Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
    }

    [Fact]
    public async Task The_internal_routes_take_only_Member_Centers_own_token()
    {
        var tenant = await stack.CreateTenantAsync();
        var forge = new TokenForge(stack);
        var key = await forge.MemberCenterKeyAsync();
        using var se = stack.SendEngineClient();
        var body = new SubscriberDataRequest(tenant.TenantId, $"x@{StackFixture.UniqueDomain()}");

        async Task<HttpStatusCode> PostAsync(string? token, string path = "internal/subscribers/export")
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body, options: StackFixture.Json) };
            if (token is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            using var response = await se.SendAsync(request, Ct);
            return response.StatusCode;
        }

        var internalToken = forge.Mint(key, tenantId: null, scope: Scopes.InternalSubscribersErase, audience: Audiences.SendEngineInternal);
        Assert.Equal(HttpStatusCode.OK, await PostAsync(internalToken));
        Assert.Equal(HttpStatusCode.OK, await PostAsync(internalToken, "internal/subscribers/lift-erasure"));
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(null));
        // A tenant's send_api token, even with the right scope name, and an internal token that names a tenant: 403.
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(await stack.SendTokenAsync(tenant)));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(forge.Mint(key, tenant.TenantId, scope: Scopes.InternalSubscribersErase)));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(forge.Mint(key, tenant.TenantId, scope: Scopes.InternalSubscribersErase, audience: Audiences.SendEngineInternal)));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(forge.Mint(key, null, scope: Scopes.SendWrite, audience: Audiences.SendEngineInternal)));
        // Member Center's token opens no tenant route.
        using var tenantRoute = new HttpRequestMessage(HttpMethod.Get, "api/suppressions");
        tenantRoute.Headers.Authorization = new AuthenticationHeaderValue("Bearer", internalToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await se.SendAsync(tenantRoute, Ct)).StatusCode);
        using var bad = new HttpRequestMessage(HttpMethod.Post, "internal/subscribers/erase") { Content = JsonContent.Create(new { tenant_id = "x", email = "" }) };
        bad.Headers.Authorization = new AuthenticationHeaderValue("Bearer", internalToken);
        Assert.Equal(HttpStatusCode.BadRequest, (await se.SendAsync(bad, Ct)).StatusCode);
    }
}
