using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using Newsletter.TestSupport;
using Npgsql;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SendEngine.Features.Retention;
using SendEngine.Features.Webhooks;
using StandardWebhooks;
using StandardWebhooks.Diagnostics;

namespace SendEngine.Tests;

/// <summary>
/// Issue 12, part 3: tenants' event webhooks. Every outbound call is verified with the StandardWebhooks package (and
/// the rotation overlap with a hand-made HMAC too), independently of Send Engine's signing code; the receiver is a real
/// HTTP server on loopback, allowed by configuration for these tests only.
/// </summary>
[LongRunning(72)]
public sealed class TenantWebhookTests(StackFixture stack)
{
    private const string WebhookScopes = Scopes.Webhooks + " " + Scopes.SendWrite + " " + Scopes.SendRead;

    [Fact]
    public async Task Bulk_and_ESP_events_reach_the_endpoint_signed_per_Standard_Webhooks_and_only_for_subscribers()
    {
        var (tenant, emails) = await stack.CreateTenantWithSubscribersAsync(2, "hook");
        var (quiet, _) = await stack.CreateTenantWithSubscribersAsync(2, "quiet");
        await using var receiver = new WebhookReceiver();
        var (engine, db) = await StartAsync();
        await using var _ = engine;
        using var se = await ClientAsync(engine, tenant);

        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent, WebhookEventTypes.Delivered]);
        Assert.StartsWith("whsec_", created.Secret, StringComparison.Ordinal);
        Assert.Equal(WebhookEndpointStates.Enabled, created.Endpoint.State);
        Assert.Equal(["delivered", "sent"], created.Endpoint.EventTypes);

        var jobId = await RunJobAsync(se, tenant, "Hooked");
        var sent = await receiver.WaitForAsync(r => r.Count >= 2, what: "two sent events");
        var verifier = new StandardWebhook(created.Secret);
        foreach (var hook in sent)
        {
            verifier.Verify(hook.Body, hook.Headers);
            Assert.StartsWith("application/json", hook.ContentType, StringComparison.Ordinal);
            Assert.StartsWith("msg_", hook.Id, StringComparison.Ordinal);
        }
        var bodies = sent.Select(h => JsonDocument.Parse(h.Body).RootElement).ToList();
        Assert.All(bodies, b => Assert.Equal("sent", b.GetProperty("type").GetString()));
        Assert.All(bodies, b => Assert.Equal(jobId, b.GetProperty("data").GetProperty("job_id").GetString()));
        Assert.Equal(emails.Order(), bodies.Select(b => b.GetProperty("data").GetProperty("email").GetString()!).Order());
        Assert.Equal(2, sent.Select(h => h.Id).Distinct().Count());

        // An ESP event (Tencent's webhook) for one of them: a delivered event follows, signed the same way.
        var messageId = bodies[0].GetProperty("data").GetProperty("message_id").GetString()!;
        var email = bodies[0].GetProperty("data").GetProperty("email").GetString()!;
        using var esp = engine.CreateClient();
        using (var posted = await esp.PostAsync("api/tencent/ses/webhook", new StringContent(JsonSerializer.Serialize(new
        {
            eventType = "delivered", messageId, email, timestamp = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
        }), Encoding.UTF8, "application/json")))
        {
            Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
        }
        var all = await receiver.WaitForAsync(r => r.Count >= 3, what: "the delivered event");
        var delivered = all.Single(h => JsonDocument.Parse(h.Body).RootElement.GetProperty("type").GetString() == "delivered");
        verifier.Verify(delivered.Body, delivered.Headers);
        var data = JsonDocument.Parse(delivered.Body).RootElement.GetProperty("data");
        Assert.Equal(email, data.GetProperty("email").GetString());
        Assert.Equal(messageId, data.GetProperty("message_id").GetString());

        // A tenant without endpoints sends a job: not one outbox row.
        using var quietClient = await ClientAsync(engine, quiet);
        await RunJobAsync(quietClient, quiet, "Quiet");
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_messages WHERE tenant_id = $1", Guid.Parse(quiet.TenantId)));
        Assert.Equal(3L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_messages WHERE tenant_id = $1", Guid.Parse(tenant.TenantId)));
    }

    [Fact]
    public async Task Transactional_mail_raises_sent_and_rejected_events_for_its_tasks_and_wakes_the_dispatcher()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver();
        // The webhook dispatcher polls only every 10 minutes: the events arrive at once only because the API (rejected)
        // and the transactional dispatcher (sent) wake it, as bulk results and ESP events do.
        var (engine, _) = await StartAsync(new() { ["Webhooks:PollInterval"] = "00:10:00" });
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent, WebhookEventTypes.Rejected]);
        using var api = engine.CreateClient();
        api.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var domain = StackFixture.UniqueDomain();
        using (var registered = await se.PostAsJsonAsync("api/sender-domains", new Newsletter.Contracts.SenderDomains.AddSenderDomainRequest(domain), StackFixture.Json))
        {
            Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
        }
        var buyer = $"buyer@{domain}";
        using var posted = await api.PostAsJsonAsync("api/v1/email", new
        {
            message = new { from_email = $"shop@{domain}", subject = "Receipt", text = "Thanks", to = new[] { new { email = buyer }, new { email = "not an address" } } },
        });
        var answer = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement;
        Assert.True(posted.IsSuccessStatusCode, answer.ToString());
        var tasks = answer.GetProperty("tasks").EnumerateArray().ToDictionary(t => t.GetProperty("email").GetString()!, t => t.GetProperty("task_id").GetString()!);

        var got = await receiver.WaitForAsync(r => r.Count >= 2, TimeSpan.FromSeconds(20), what: "sent and rejected events");
        var verifier = new StandardWebhook(created.Secret);
        var byType = got.ToDictionary(h => JsonDocument.Parse(h.Body).RootElement.GetProperty("type").GetString()!, h => h);
        foreach (var hook in got)
        {
            verifier.Verify(hook.Body, hook.Headers);
        }
        var sent = JsonDocument.Parse(byType["sent"].Body).RootElement.GetProperty("data");
        Assert.Equal("transactional", sent.GetProperty("source").GetString());
        Assert.Equal(tasks[buyer], sent.GetProperty("task_id").GetString());
        Assert.Equal(answer.GetProperty("request_id").GetString(), sent.GetProperty("request_id").GetString());
        Assert.False(string.IsNullOrEmpty(sent.GetProperty("message_id").GetString()));
        var rejected = JsonDocument.Parse(byType["rejected"].Body).RootElement.GetProperty("data");
        Assert.Equal(tasks["not an address"], rejected.GetProperty("task_id").GetString());
    }

    [Fact]
    public async Task The_seeds_recipient_and_request_callbacks_go_to_the_registered_url_signed_with_the_seeds_bodies()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver();
        var (engine, _) = await StartAsync();
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        // The callback url is registered as an endpoint: its secret signs the callbacks (whatever event types it wants).
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Complained]);
        using var api = engine.CreateClient();
        api.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        var domain = StackFixture.UniqueDomain();
        using (var registered = await se.PostAsJsonAsync("api/sender-domains", new Newsletter.Contracts.SenderDomains.AddSenderDomainRequest(domain), StackFixture.Json))
        {
            Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
        }
        async Task<JsonElement> SendAsync(string type, params string[] to)
        {
            using var posted = await api.PostAsJsonAsync("api/v1/email", new
            {
                message = new { from_email = $"shop@{domain}", subject = "Receipt", text = "Thanks", to = to.Select(e => new { email = e }).ToArray() },
                callback = new { url = receiver.Url, type },
            });
            var answer = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement;
            Assert.True(posted.IsSuccessStatusCode, answer.ToString());
            return answer;
        }
        var verifier = new StandardWebhook(created.Secret);

        // recipient: once per task, when it is final: {email, task_id, status, reject_reason}.
        var first = await SendAsync("recipient", $"ann@{domain}", "not an address");
        var perTask = await receiver.WaitForAsync(r => r.Count >= 2, what: "two recipient callbacks");
        foreach (var hook in perTask)
        {
            verifier.Verify(hook.Body, hook.Headers);
            Assert.Equal(["email", "task_id", "status", "reject_reason"], JsonDocument.Parse(hook.Body).RootElement.EnumerateObject().Select(p => p.Name));
        }
        var bodies = perTask.Select(h => JsonDocument.Parse(h.Body).RootElement).ToDictionary(b => b.GetProperty("email").GetString()!);
        var tasks = first.GetProperty("tasks").EnumerateArray().ToDictionary(t => t.GetProperty("email").GetString()!, t => t.GetProperty("task_id").GetString()!);
        Assert.Equal("sent", bodies[$"ann@{domain}"].GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, bodies[$"ann@{domain}"].GetProperty("reject_reason").ValueKind);
        Assert.Equal(tasks[$"ann@{domain}"], bodies[$"ann@{domain}"].GetProperty("task_id").GetString());
        Assert.Equal("invalid", bodies["not an address"].GetProperty("status").GetString());
        Assert.Equal(tasks["not an address"], bodies["not an address"].GetProperty("task_id").GetString());

        // request: once, when every task is final: {request_id, tasks[{email, task_id, status, reject_reason}]}.
        var second = await SendAsync("request", $"bob@{domain}", $"cid@{domain}");
        var all = await receiver.WaitForAsync(r => r.Count >= 3, what: "the request callback");
        var request = all[2];
        verifier.Verify(request.Body, request.Headers);
        var body = JsonDocument.Parse(request.Body).RootElement;
        Assert.Equal(["request_id", "tasks"], body.EnumerateObject().Select(p => p.Name));
        Assert.Equal(second.GetProperty("request_id").GetString(), body.GetProperty("request_id").GetString());
        var listed = body.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal([$"bob@{domain}", $"cid@{domain}"], listed.Select(t => t.GetProperty("email").GetString()!));
        Assert.All(listed, t => Assert.Equal("sent", t.GetProperty("status").GetString()));
        Assert.All(listed, t => Assert.Equal(["email", "task_id", "status", "reject_reason"], t.EnumerateObject().Select(p => p.Name)));
        Assert.Equal(second.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("task_id").GetString()), listed.Select(t => t.GetProperty("task_id").GetString()));
        await Task.Delay(1000);
        Assert.Equal(3, receiver.Received.Count);
    }

    [Fact]
    public async Task A_failing_receiver_is_retried_with_a_stable_webhook_id_attempts_are_readable_and_an_event_can_be_replayed()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(1, "retry");
        // Two failures, then the receiver recovers.
        await using var receiver = new WebhookReceiver(n => n <= 2 ? 500 : 204);
        var (engine, _) = await StartAsync();
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent]);
        var endpointId = created.Endpoint.EndpointId;

        await RunJobAsync(se, tenant, "Retried");
        var got = await receiver.WaitForAsync(r => r.Count >= 3, what: "three attempts");
        Assert.Single(got.Select(h => h.Id).Distinct());
        Assert.Single(got.Select(h => h.Body).Distinct());
        var verifier = new StandardWebhook(created.Secret);
        foreach (var hook in got)
        {
            verifier.Verify(hook.Body, hook.Headers);
        }

        var message = await WaitForAsync(async () =>
        {
            var page = await se.GetFromJsonAsync<WebhookMessagePage>($"api/webhook-endpoints/{endpointId}/messages", StackFixture.Json);
            return page!.Items.SingleOrDefault(m => m.Status == WebhookMessageStatuses.Delivered);
        });
        Assert.Equal(got[0].Id, message.MessageId);
        Assert.Equal(3, message.Attempts);

        var attempts = (await se.GetFromJsonAsync<WebhookAttemptPage>($"api/webhook-endpoints/{endpointId}/attempts", StackFixture.Json))!.Items;
        Assert.Equal([204, 500, 500], attempts.Select(a => a.ResponseStatus ?? 0));
        Assert.All(attempts, a => Assert.Equal(got[0].Id, a.MessageId));
        Assert.All(attempts, a => Assert.Equal(got[0].Body, a.RequestBody));
        Assert.All(attempts, a => Assert.Equal(receiver.Url, a.Url));
        // The first 1 KB of the answer, no more.
        Assert.StartsWith("receiver says 500", attempts[1].ResponseBody, StringComparison.Ordinal);
        Assert.Equal(1024, attempts[1].ResponseBody!.Length);
        Assert.All(attempts, a => Assert.True(a.LatencyMs >= 0));

        // Replay: the same webhook-id and body once more, recorded as a replay.
        using var replay = await se.PostAsync($"api/webhook-endpoints/{endpointId}/messages/{message.MessageId}/replay", null);
        Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        var again = await receiver.WaitForAsync(r => r.Count >= 4, what: "the replay");
        Assert.Equal(got[0].Id, again[3].Id);
        Assert.Equal(got[0].Body, again[3].Body);
        verifier.Verify(again[3].Body, again[3].Headers);
        var afterReplay = await WaitForAsync(async () =>
        {
            var page = await se.GetFromJsonAsync<WebhookAttemptPage>($"api/webhook-endpoints/{endpointId}/attempts?limit=1", StackFixture.Json);
            return page!.Items.SingleOrDefault(a => a.Replay);
        });
        Assert.Equal(204, afterReplay.ResponseStatus);
        using var unknown = await se.PostAsync($"api/webhook-endpoints/{endpointId}/messages/msg_nope/replay", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task An_endpoint_failing_for_the_window_is_disabled_reported_and_can_be_enabled_again()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver(_ => 503);
        var (engine, db) = await StartAsync(new()
        {
            ["Webhooks:DisableAfter"] = "00:00:02",
            ["Webhooks:RetrySchedule"] = string.Join(", ", Enumerable.Repeat("00:00:00.400", 20)),
        });
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent]);
        var endpointId = created.Endpoint.EndpointId;
        await QueueMessageAsync(db, endpointId, tenant.TenantId);

        var disabled = await WaitForAsync(async () =>
        {
            var e = await se.GetFromJsonAsync<WebhookEndpointResponse>($"api/webhook-endpoints/{endpointId}", StackFixture.Json);
            return e!.State == WebhookEndpointStates.FailingDisabled ? e : null;
        });
        Assert.NotNull(disabled.DisabledAt);
        Assert.NotNull(disabled.FailingSince);
        Assert.Contains("Disabled automatically", disabled.DisabledReason, StringComparison.Ordinal);
        Assert.True(receiver.Received.Count >= 2);
        // Reported: a metric (and a warning in the log).
        using var plain = engine.CreateClient();
        await StackFixture.WaitForMetricsAsync(plain, "(?m)^sendengine_webhooks_endpoints_disabled_total(\\{[^}]*\\})? 1(\\s|$)");
        // A disabled endpoint gets no more attempts.
        var count = receiver.Received.Count;
        await Task.Delay(1500);
        Assert.Equal(count, receiver.Received.Count);

        // Enabled again (the receiver is fixed): the pending message goes out.
        receiver.Respond = _ => 200;
        using var enable = await se.PatchAsJsonAsync($"api/webhook-endpoints/{endpointId}", new UpdateWebhookEndpointRequest(null, null, null, true), StackFixture.Json);
        var enabled = await StackFixture.ReadAsync<WebhookEndpointResponse>(enable, HttpStatusCode.OK);
        Assert.Equal(WebhookEndpointStates.Enabled, enabled.State);
        Assert.Null(enabled.FailingSince);
        await receiver.WaitForAsync(r => r.Count > count, what: "delivery after re-enabling");
    }

    [Fact]
    public async Task An_endpoint_that_is_down_is_paused_as_a_whole_and_gets_every_event_once_it_answers_again()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver(_ => 503);
        // Without the pause, five quick retries per message would fail all 30 messages while the receiver is down.
        var (engine, db) = await StartAsync(new()
        {
            ["Webhooks:PauseAfterFailures"] = "3",
            ["Webhooks:MinPause"] = "00:00:00.300",
            ["Webhooks:MaxPause"] = "00:00:00.800",
            ["Webhooks:Concurrency"] = "2",
            ["Webhooks:RetrySchedule"] = string.Join(", ", Enumerable.Repeat("00:00:00.200", 5)),
        });
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var endpointId = (await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent])).Endpoint.EndpointId;
        var queued = new List<string>();
        for (var i = 0; i < 30; i++)
        {
            queued.Add(await QueueMessageAsync(db, endpointId, tenant.TenantId));
        }

        // Down: paused after 3 failures in a row (2 more may have been in flight), then one probe per pause.
        var paused = await WaitForAsync(async () =>
        {
            var e = await se.GetFromJsonAsync<WebhookEndpointResponse>($"api/webhook-endpoints/{endpointId}", StackFixture.Json);
            return e!.PausedUntil is not null && receiver.Received.Count >= 8 ? e : null;
        });
        Assert.True(paused.ConsecutiveFailures >= 3);
        Assert.Equal(WebhookEndpointStates.Enabled, paused.State);
        await Task.Delay(2000);
        var id = Guid.Parse(endpointId);
        var attemptsWhileDown = await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1", id);
        // 3 + 2 in flight, then probes at most every 300 ms for the few seconds it was down: far below 30 messages x 6 attempts.
        Assert.InRange(attemptsWhileDown, 5, 25);
        Assert.True(await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_messages WHERE endpoint_id = $1 AND attempts = 0", id) >= 10);
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_messages WHERE endpoint_id = $1 AND status <> 'pending'", id));

        // Up again: the next probe succeeds and every waiting event is delivered at once, none lost, each delivered once.
        receiver.Respond = _ => 204;
        await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db,
            "SELECT count(*) FROM webhook_messages WHERE endpoint_id = $1 AND status = 'delivered'", id) == 30 ? "all" : null, TimeSpan.FromSeconds(20));
        var delivered = await TestSql.ScalarAsync<string[]>(db, """
            SELECT array_agg(webhook_id) FROM webhook_attempts WHERE endpoint_id = $1 AND response_status BETWEEN 200 AND 299
            """, id);
        Assert.Equal(queued.Order(), delivered.Order());
        Assert.Subset(receiver.Received.Select(r => r.Id).ToHashSet(), queued.ToHashSet());
        var resumed = await se.GetFromJsonAsync<WebhookEndpointResponse>($"api/webhook-endpoints/{endpointId}", StackFixture.Json);
        Assert.Equal((0, (DateTimeOffset?)null, (DateTimeOffset?)null), (resumed!.ConsecutiveFailures, resumed.PausedUntil, resumed.FailingSince));
    }

    [Fact]
    public async Task Private_loopback_and_link_local_targets_are_refused_at_registration_and_again_at_call_time()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver();
        var (engine, db) = await StartAsync(new() { ["Webhooks:AllowPrivateNetworks"] = "false" });
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        foreach (var url in new[]
                 {
                     "https://10.1.2.3/hook", "https://127.0.0.1/hook", "https://127.9.9.9:8443/hook", "https://169.254.169.254/latest/meta-data",
                     "https://[::1]/hook", "https://[fd00::1]/hook", "https://[fc00::5]/hook", "https://[::ffff:10.0.0.1]/hook", "https://192.168.1.1/",
                     "https://172.16.0.1/", "https://100.64.0.1/", "https://0.0.0.0/", "https://224.0.0.1/", "https://[fe80::1]/",
                     // A name that resolves to loopback.
                     "https://localhost/hook", "https://app.localhost/hook",
                     "ftp://example.com/hook", "https://user:pass@example.com/hook", "not a url",
                 })
        {
            using var refused = await se.PostAsJsonAsync("api/webhook-endpoints", new CreateWebhookEndpointRequest(url, ["sent"], null), StackFixture.Json);
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"{url}: {(int)refused.StatusCode} {body}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Contains("\"url\"", body, StringComparison.Ordinal);
        }

        // A public address passes registration. Later its name points at loopback (here: the row changed under it,
        // as a DNS answer would): the dispatcher resolves and checks again, and refuses to connect.
        var created = await CreateEndpointAsync(se, "https://93.184.215.14/hook", [WebhookEventTypes.Sent]);
        await Execute(db, "UPDATE webhook_endpoints SET url = $1 WHERE id = $2", receiver.Url, Guid.Parse(created.Endpoint.EndpointId));
        await QueueMessageAsync(db, created.Endpoint.EndpointId, tenant.TenantId);
        var attempt = await WaitForAsync(async () =>
            (await se.GetFromJsonAsync<WebhookAttemptPage>($"api/webhook-endpoints/{created.Endpoint.EndpointId}/attempts", StackFixture.Json))!.Items.FirstOrDefault());
        Assert.Null(attempt.ResponseStatus);
        Assert.Contains("refused", attempt.Error, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", attempt.Error, StringComparison.Ordinal);
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task Plain_http_urls_are_refused_outside_Development()
    {
        var tenant = await stack.CreateTenantAsync();
        var (engine, _) = await StartAsync(new()
        {
            ["environment"] = "Production",
            ["TencentSes:Webhook:Verification"] = "Token",
            ["TencentSes:Webhook:SecretToken"] = "webhook-production-token-0123456789",
            ["Privacy:AddressHashKey"] = "production-address-hash-key-0123456789",
        });
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        using var refused = await se.PostAsJsonAsync("api/webhook-endpoints", new CreateWebhookEndpointRequest("http://93.184.215.14/hook", ["sent"], null), StackFixture.Json);
        var body = await refused.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("must use https", body, StringComparison.Ordinal);
        using var accepted = await se.PostAsJsonAsync("api/webhook-endpoints", new CreateWebhookEndpointRequest("https://93.184.215.14/hook", ["sent"], null), StackFixture.Json);
        Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
    }

    [Fact]
    public async Task The_secret_is_shown_once_stored_encrypted_and_a_rotation_signs_with_both_secrets_during_the_overlap()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent]);
        var id = created.Endpoint.EndpointId;
        var first = created.Secret;
        var raw = Convert.FromBase64String(first["whsec_".Length..]);
        Assert.Equal(32, raw.Length);

        // Never again in an answer, and not in the database as such.
        foreach (var path in new[] { "api/webhook-endpoints", $"api/webhook-endpoints/{id}" })
        {
            var text = await se.GetStringAsync(path);
            Assert.DoesNotContain("whsec_", text, StringComparison.Ordinal);
            Assert.DoesNotContain(first[6..], text, StringComparison.Ordinal);
        }
        var stored = await TestSql.ScalarAsync<byte[]>(db, "SELECT secret FROM webhook_endpoints WHERE id = $1", Guid.Parse(id));
        Assert.False(stored.AsSpan().IndexOf(raw) >= 0, "the secret is stored in clear");

        using var rotate = await se.PostAsJsonAsync($"api/webhook-endpoints/{id}/rotate-secret", new RotateWebhookSecretRequest(3600), StackFixture.Json);
        var rotated = await StackFixture.ReadAsync<WebhookEndpointSecretResponse>(rotate, HttpStatusCode.OK);
        var second = rotated.Secret;
        Assert.NotEqual(first, second);
        Assert.NotNull(rotated.Endpoint.PreviousSecretExpiresAt);

        await QueueMessageAsync(db, id, tenant.TenantId);
        var during = (await receiver.WaitForAsync(r => r.Count >= 1))[0];
        // Two v1 signatures, space-separated, the new secret's first. StandardWebhooks 1.1.2's Verify never looks at the
        // last entry of a multi-signature header (its loop ends before it), so each entry is verified on its own.
        var signatures = during.Signature.Split(' ');
        Assert.Equal(2, signatures.Length);
        new StandardWebhook(second).Verify(during.Body, (during with { Signature = signatures[0] }).Headers);
        new StandardWebhook(first).Verify(during.Body, (during with { Signature = signatures[1] }).Headers);
        Assert.Throws<WebhookVerificationException>(() => new StandardWebhook(first).Verify(during.Body, (during with { Signature = signatures[0] }).Headers));
        // By hand too: HMAC-SHA256 over id.timestamp.body, per secret.
        Assert.Equal([Sign(second, during), Sign(first, during)], signatures);

        // A rotation without overlap: only the newest secret signs.
        using var rotateNow = await se.PostAsJsonAsync($"api/webhook-endpoints/{id}/rotate-secret", new RotateWebhookSecretRequest(0), StackFixture.Json);
        var third = (await StackFixture.ReadAsync<WebhookEndpointSecretResponse>(rotateNow, HttpStatusCode.OK)).Secret;
        await QueueMessageAsync(db, id, tenant.TenantId);
        var after = (await receiver.WaitForAsync(r => r.Count >= 2))[1];
        new StandardWebhook(third).Verify(after.Body, after.Headers);
        Assert.Throws<WebhookVerificationException>(() => new StandardWebhook(second).Verify(after.Body, after.Headers));
        Assert.Throws<WebhookVerificationException>(() => new StandardWebhook(first).Verify(after.Body, after.Headers));
        Assert.Equal(Sign(third, after), after.Signature);
    }

    [Fact]
    public async Task Another_tenants_endpoint_is_a_404_and_operators_manage_endpoints_with_platform_admin()
    {
        var owner = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var ownerClient = await ClientAsync(engine, owner);
        using var otherClient = await ClientAsync(engine, other);
        var created = await CreateEndpointAsync(ownerClient, "https://93.184.215.14/hook", [WebhookEventTypes.Sent]);
        var id = created.Endpoint.EndpointId;
        var webhookId = await QueueMessageAsync(db, id, owner.TenantId, due: false);

        await StackFixture.AssertAllNotFoundAsync(otherClient,
            () => new(HttpMethod.Get, $"api/webhook-endpoints/{id}"),
            () => new(HttpMethod.Patch, $"api/webhook-endpoints/{id}") { Content = JsonContent.Create(new { enabled = false }) },
            () => new(HttpMethod.Delete, $"api/webhook-endpoints/{id}"),
            () => new(HttpMethod.Post, $"api/webhook-endpoints/{id}/rotate-secret"),
            () => new(HttpMethod.Get, $"api/webhook-endpoints/{id}/attempts"),
            () => new(HttpMethod.Get, $"api/webhook-endpoints/{id}/messages"),
            () => new(HttpMethod.Post, $"api/webhook-endpoints/{id}/messages/{webhookId}/replay"));
        Assert.Empty((await otherClient.GetFromJsonAsync<WebhookEndpointList>("api/webhook-endpoints", StackFixture.Json))!.Items);
        Assert.Single((await ownerClient.GetFromJsonAsync<WebhookEndpointList>("api/webhook-endpoints", StackFixture.Json))!.Items);

        // Without the webhooks scope: 403. A tenant token on the admin routes: 403.
        using var sendOnly = engine.CreateClient();
        sendOnly.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(owner));
        Assert.Equal(HttpStatusCode.Forbidden, (await sendOnly.GetAsync("api/webhook-endpoints")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await ownerClient.GetAsync($"admin/tenants/{owner.TenantId}/webhook-endpoints")).StatusCode);

        // The platform admin (Member Center's admin token) lists, creates and deletes any tenant's endpoints.
        using var admin = engine.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var listed = await admin.GetFromJsonAsync<WebhookEndpointList>($"admin/tenants/{owner.TenantId}/webhook-endpoints", StackFixture.Json);
        Assert.Equal(id, Assert.Single(listed!.Items).EndpointId);
        using var adminCreate = await admin.PostAsJsonAsync($"admin/tenants/{other.TenantId}/webhook-endpoints",
            new CreateWebhookEndpointRequest("https://93.184.215.14/other", ["bounced", "complained"], "ops"), StackFixture.Json);
        var made = await StackFixture.ReadAsync<WebhookEndpointSecretResponse>(adminCreate, HttpStatusCode.Created);
        Assert.Equal(other.TenantId, made.Endpoint.TenantId);
        Assert.Single((await otherClient.GetFromJsonAsync<WebhookEndpointList>("api/webhook-endpoints", StackFixture.Json))!.Items);
        using var badTypes = await admin.PostAsJsonAsync($"admin/tenants/{other.TenantId}/webhook-endpoints",
            new CreateWebhookEndpointRequest("https://93.184.215.14/x", ["sent", "exploded"], null), StackFixture.Json);
        Assert.Equal(HttpStatusCode.BadRequest, badTypes.StatusCode);
        Assert.Contains("event_types", await badTypes.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync($"admin/tenants/{other.TenantId}/webhook-endpoints/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"admin/tenants/{owner.TenantId}/webhook-endpoints/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ownerClient.GetAsync($"api/webhook-endpoints/{id}")).StatusCode);
    }

    [Fact]
    public async Task Attempts_and_finished_messages_are_deleted_after_the_retention_window()
    {
        var tenant = await stack.CreateTenantAsync();
        await using var receiver = new WebhookReceiver();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var se = await ClientAsync(engine, tenant);
        var created = await CreateEndpointAsync(se, receiver.Url, [WebhookEventTypes.Sent]);
        var id = created.Endpoint.EndpointId;
        await QueueMessageAsync(db, id, tenant.TenantId);
        await QueueMessageAsync(db, id, tenant.TenantId);
        await receiver.WaitForAsync(r => r.Count >= 2);
        await WaitForAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_attempts") == 2 ? "" : null);
        // One attempt and its message are 8 days old; a pending message of that age stays (not finished).
        await Execute(db, """
            WITH old AS (SELECT id, message_id FROM webhook_attempts ORDER BY id LIMIT 1)
            UPDATE webhook_attempts SET attempted_at = now() - interval '8 days' WHERE id IN (SELECT id FROM old)
            """);
        await Execute(db, """
            UPDATE webhook_messages SET completed_at = now() - interval '8 days'
            WHERE id = (SELECT message_id FROM webhook_attempts WHERE attempted_at < now() - interval '7 days')
            """);
        var pending = await QueueMessageAsync(db, id, tenant.TenantId, due: false);
        await Execute(db, "UPDATE webhook_messages SET status = 'pending', next_attempt_at = now() + interval '1 day', created_at = now() - interval '30 days' WHERE webhook_id = $1", pending);

        var result = await engine.Services.GetRequiredService<RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken);

        Assert.Equal(1, result.WebhookAttempts);
        Assert.Equal(1, result.WebhookMessages);
        var page = await se.GetFromJsonAsync<WebhookAttemptPage>($"api/webhook-endpoints/{id}/attempts", StackFixture.Json);
        Assert.Single(page!.Items);
        var messages = (await se.GetFromJsonAsync<WebhookMessagePage>($"api/webhook-endpoints/{id}/messages", StackFixture.Json))!.Items;
        Assert.Equal(2, messages.Count);
        Assert.Contains(messages, m => m.MessageId == pending);
    }

    [Fact]
    public void A_password_format_secret_written_before_the_shared_protector_still_decrypts()
    {
        // Written by WebhookSecretProtector's own AES-GCM code before the scheme moved to ServiceDefaults: pins the byte
        // layout, KDF, iterations and associated data, so endpoints already stored keep signing.
        var stored = Convert.FromBase64String("AY0cQlDhzIHPq4IP8vb2XgZIWpHaAsKGX/bUaaE0v8obVpfafXFY0ez6unfVt4ayWn6kXngnvAnvVuBgcAzo0IfeMLfa8oCss1DOLe8=");
        var endpointId = Guid.Parse("5f0c6b1e-2d3a-4c5b-9e8f-7a6b5c4d3e2f");
        using var cache = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        var protector = new WebhookSecretProtector(Options.Create(new EventWebhookOptions { SecretPassword = "a-webhook-secret-password-0123" }), new EphemeralDataProtectionProvider(), cache);
        Assert.Equal("0123456789abcdef0123456789ABCDEF"u8.ToArray(), protector.Unprotect(endpointId, stored));
        Assert.ThrowsAny<CryptographicException>(() => protector.Unprotect(Guid.NewGuid(), stored));
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A Send Engine of its own (own database), its loopback receivers allowed, retries a few hundred ms apart.</summary>
    private Task<(SendEngineFactory Engine, string Db)> StartAsync(Dictionary<string, string?>? overrides = null) =>
        stack.StartSendEngineAsync(new Dictionary<string, string?>
        {
            ["Webhooks:AllowPrivateNetworks"] = "true",
            ["Webhooks:RetrySchedule"] = "00:00:00.300, 00:00:00.300, 00:00:00.300",
            ["Webhooks:PollInterval"] = "00:00:00.100",
            ["Webhooks:Timeout"] = "00:00:05",
            ["Webhooks:SubscriptionCacheTtl"] = "00:00:00",
        }, overrides);

    private Task<HttpClient> ClientAsync(SendEngineFactory engine, TestTenant tenant) => stack.SendEngineClientAsync(engine, tenant, WebhookScopes);

    private static async Task<WebhookEndpointSecretResponse> CreateEndpointAsync(HttpClient se, string url, string[] types)
    {
        using var response = await se.PostAsJsonAsync("api/webhook-endpoints", new CreateWebhookEndpointRequest(url, types, "test"), StackFixture.Json);
        var created = await StackFixture.ReadAsync<WebhookEndpointSecretResponse>(response, HttpStatusCode.Created);
        Assert.Equal($"/api/webhook-endpoints/{created.Endpoint.EndpointId}", response.Headers.Location?.OriginalString);
        return created;
    }

    private static async Task<string> RunJobAsync(HttpClient se, TestTenant tenant, string subject)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "hello", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        await StackFixture.WaitForJobAsync(se, job.Id, j => j.Status == SendJobStatuses.Completed);
        return job.Id;
    }

    /// <summary>An outbox row as the publisher writes it (for tests about delivery, not about the event source).</summary>
    private static async Task<string> QueueMessageAsync(string db, string endpointId, string tenantId, bool due = true)
    {
        var webhookId = "msg_" + Guid.NewGuid().ToString("N");
        var payload = JsonSerializer.Serialize(new { type = "sent", timestamp = DateTimeOffset.UtcNow, data = new { email = "reader@example.com" } });
        await Execute(db, """
            INSERT INTO webhook_messages (webhook_id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at, created_at, replay)
            VALUES ($1, $2, $3, 'sent', $4, $5, 0, now(), now(), false)
            """, webhookId, Guid.Parse(endpointId), Guid.Parse(tenantId), payload, due ? "pending" : "delivered");
        return webhookId;
    }

    /// <summary>The v1 signature computed here from the spec: HMAC-SHA256(secret, "{id}.{timestamp}.{body}"), base64.</summary>
    private static string Sign(string secret, ReceivedWebhook hook)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{hook.Id}.{hook.Timestamp}.{hook.Body}")));
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, TimeSpan? timeout = null) where T : class
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
        throw new TimeoutException("condition not reached\n" + ServiceLogs.Dump());
    }

    private static async Task Execute(string db, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        }
        await cmd.ExecuteNonQueryAsync();
    }
}
