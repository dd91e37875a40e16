using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Tests;

/// <summary>
/// Issue 15, part 1: the webhook gateway. Callbacks are posted to the real webhook route with real signatures; the log,
/// the switch, the live view and the test console are read back through the API, effects through the API and the database.
/// </summary>
public sealed class WebhookGatewayTests(StackFixture stack)
{
    private const string SigningKey = "gateway-test-signing-key-0123456789";
    private const string Scope = Scopes.Webhooks + " " + Scopes.SendWrite + " " + Scopes.SendRead;

    [Fact]
    public async Task A_signed_callback_is_logged_for_its_tenant_with_secrets_cut_and_its_changes_and_a_forged_one_goes_to_the_platform_log()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(1, "gw-log");
        var other = await stack.CreateTenantAsync();
        var (engine, db) = await StartAsync();
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Scope);
        var recipient = (await RecipientsAsync(se, await RunJobAsync(se, tenant))).Single();
        using var hook = engine.CreateClient();

        var body = Json(new { eventType = "delivered", messageId = recipient.MessageId, email = recipient.Email, timestamp = Now() });
        var (status, entryId, signature) = await PostSignedAsync(hook, body);
        Assert.Equal(HttpStatusCode.OK, status);
        // Stored compactly: no second copy of the body (its event holds it), headers as text lines, a seq that the
        // processor's attribution does not change.
        var seq = await TestSql.ScalarAsync<long>(db, "SELECT seq FROM webhook_gateway_entries WHERE id = $1", Guid.Parse(entryId!));
        var entry = await WaitForAsync(se, entryId!, e => e.Entry.Result == GatewayResults.Applied);
        Assert.Equal(seq, await TestSql.ScalarAsync<long>(db, "SELECT seq FROM webhook_gateway_entries WHERE id = $1", Guid.Parse(entryId!)));
        Assert.True(await TestSql.ScalarAsync<bool>(db, "SELECT body IS NULL FROM webhook_gateway_entries WHERE id = $1", Guid.Parse(entryId!)));
        Assert.Contains("\nX-Tencent-Timestamp: ", "\n" + await TestSql.ScalarAsync<string>(db, "SELECT headers FROM webhook_gateway_entries WHERE id = $1",
            Guid.Parse(entryId!)), StringComparison.Ordinal);
        Assert.Equal(tenant.TenantId, entry.Entry.TenantId);
        Assert.Equal(GatewayVerifications.Ok, entry.Entry.Verification);
        Assert.Equal(GatewayRecorder.WebhookSource, entry.Entry.Source);
        Assert.Equal(["delivered"], entry.Entry.EventTypes);
        // The body is its event's payload (the same JSON; PostgreSQL's jsonb orders keys and spaces it its own way).
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(body), JsonNode.Parse(entry.Body)), entry.Body);
        // The signature is cut to a prefix; the timestamp (no secret) is kept whole.
        var shown = entry.Headers["X-Tencent-Signature"];
        Assert.StartsWith(signature[..4], shown, StringComparison.Ordinal);
        Assert.DoesNotContain(signature, shown, StringComparison.Ordinal);
        Assert.Contains("redacted", shown, StringComparison.Ordinal);
        Assert.DoesNotContain(signature, JsonSerializer.Serialize(entry), StringComparison.Ordinal);
        Assert.Matches("^[0-9]+$", entry.Headers["X-Tencent-Timestamp"]);
        var change = Assert.Single(entry.Changes);
        Assert.Equal("applied", change.Outcome);
        Assert.Contains("recipient → delivered", change.Effect, StringComparison.Ordinal);
        Assert.Equal(0, entry.Duplicates);

        // The same callback again: a duplicate, logged as such.
        var (_, againId, _) = await PostSignedAsync(hook, body);
        var again = await GetAsync<GatewayEntryResponse>(se, $"api/webhook-gateway/events/{againId}");
        Assert.Equal(GatewayResults.Duplicate, again.Entry.Result);
        Assert.Equal(1, again.Duplicates);
        // No event of its own holds the body, so the entry keeps it.
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(body), JsonNode.Parse(again.Body)), again.Body);
        Assert.False(await TestSql.ScalarAsync<bool>(db, "SELECT body IS NULL FROM webhook_gateway_entries WHERE id = $1", Guid.Parse(againId!)));

        // A forged signature: refused, and logged (platform scope: no tenant is known for it) as bad_signature.
        var (forged, forgedId, _) = await PostSignedAsync(hook, body, key: "not-the-signing-key-0123456789");
        Assert.Equal(HttpStatusCode.Unauthorized, forged);
        using var admin = engine.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var platform = await WaitForPageAsync<GatewayEntryPage>(admin, "admin/webhook-gateway/events?verification=bad_signature", p => p.Items.Any(i => i.EntryId == forgedId));
        var bad = platform.Items.Single(i => i.EntryId == forgedId);
        Assert.Equal(GatewayResults.Rejected, bad.Result);
        Assert.Equal(401, bad.StatusCode);
        Assert.Null(bad.TenantId);
        var badDetail = await GetAsync<GatewayEntryResponse>(admin, $"admin/webhook-gateway/events/{forgedId}");
        Assert.DoesNotContain("not-the-signing-key", JsonSerializer.Serialize(badDetail), StringComparison.Ordinal);
        // The tenant's log: its two entries, newest first, not the forged one; the filter works.
        var mine = await GetAsync<GatewayEntryPage>(se, "api/webhook-gateway/events");
        Assert.Equal([againId, entryId], mine.Items.Select(i => i.EntryId));
        Assert.Empty((await GetAsync<GatewayEntryPage>(se, "api/webhook-gateway/events?verification=bad_signature")).Items);
        var paged = await GetAsync<GatewayEntryPage>(se, "api/webhook-gateway/events?limit=1");
        Assert.Equal(againId, Assert.Single(paged.Items).EntryId);
        Assert.Equal([entryId], (await GetAsync<GatewayEntryPage>(se, $"api/webhook-gateway/events?limit=1&before={paged.NextBefore}")).Items.Select(i => i.EntryId));
        // Operators see it under the tenant too.
        Assert.Equal(entryId, (await GetAsync<GatewayEntryResponse>(admin, $"admin/tenants/{tenant.TenantId}/webhook-gateway/events/{entryId}")).Entry.EntryId);

        // Another tenant: a 404 for the entry, an empty log. A token without the scopes: refused.
        using var stranger = await stack.SendEngineClientAsync(engine, other, Scope);
        using (var response = await stranger.GetAsync($"api/webhook-gateway/events/{entryId}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
        Assert.Empty((await GetAsync<GatewayEntryPage>(stranger, "api/webhook-gateway/events")).Items);
        using var sendOnly = await stack.SendEngineClientAsync(engine, tenant, Scopes.SendRead);
        using (var response = await sendOnly.GetAsync("api/webhook-gateway/events"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
        using (var response = await sendOnly.PutAsJsonAsync("api/webhook-gateway/ingestion", new SetGatewayIngestionRequest(false), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
        using (var response = await se.GetAsync("admin/webhook-gateway/events"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
        using (var response = await se.GetAsync("api/webhook-gateway/events?verification=nope"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("\"verification\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(1L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_gateway_entries WHERE tenant_id IS NULL"));
        // The gateway log is the callbacks' record: none of the three is also an operation-log row (one INSERT and
        // commit per callback), while a change through the tenant API still is.
        Assert.Equal(0L, await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM operation_log WHERE path LIKE '/api/tencent/%'"));
        Assert.True(await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM operation_log WHERE tenant_id::text = $1", tenant.TenantId) > 0);
    }

    [Fact]
    public async Task With_ingestion_off_a_hard_bounce_is_answered_and_logged_but_not_applied_until_the_entry_is_applied()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(1, "gw-off");
        var (engine, _) = await StartAsync();
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Scope);
        var jobId = await RunJobAsync(se, tenant);
        var recipient = (await RecipientsAsync(se, jobId)).Single();
        using var hook = engine.CreateClient();

        Assert.True((await GetAsync<GatewayIngestion>(se, "api/webhook-gateway/ingestion")).Enabled);
        using (var off = await se.PutAsJsonAsync("api/webhook-gateway/ingestion", new SetGatewayIngestionRequest(false), StackFixture.Json))
        {
            Assert.False((await StackFixture.ReadAsync<GatewayIngestion>(off, HttpStatusCode.OK)).Enabled);
        }
        using (var invalid = await se.PutAsJsonAsync("api/webhook-gateway/ingestion", new { }, StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        }
        var body = Json(new
        {
            eventType = "bounce", bounceType = "Permanent", bounceSubType = "General", messageId = recipient.MessageId, email = recipient.Email,
            timestamp = Now(), reason = "550 user unknown",
        });
        var (status, entryId, _) = await PostSignedAsync(hook, body);
        Assert.Equal(HttpStatusCode.OK, status);
        var held = await WaitForAsync(se, entryId!, e => e.Entry.Result == GatewayResults.Held);
        Assert.Equal("held", held.Changes.Single().Outcome);
        // Not applied: no suppression, the recipient still sent.
        Assert.Empty((await GetAsync<SuppressionPage>(se, "api/suppressions")).Items);
        Assert.Equal("sent", (await RecipientsAsync(se, jobId)).Single().Status);

        // Apply the entry: processed now (ingestion still off), the suppression is added.
        using (var applied = await se.PostAsync($"api/webhook-gateway/events/{entryId}/apply", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, applied.StatusCode);
        }
        var done = await WaitForAsync(se, entryId!, e => e.Entry.Result == GatewayResults.Applied);
        Assert.Contains("suppression added (hard_bounce)", done.Changes.Single().Effect, StringComparison.Ordinal);
        Assert.Equal(recipient.Email, (await GetAsync<SuppressionPage>(se, "api/suppressions")).Items.Single().Email);
        using (var twice = await se.PostAsync($"api/webhook-gateway/events/{entryId}/apply", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
        }
        var other = await stack.CreateTenantAsync();
        using var stranger = await stack.SendEngineClientAsync(engine, other, Scope);
        using (var foreign = await stranger.PostAsync($"api/webhook-gateway/events/{entryId}/apply", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
    }

    [Fact]
    public async Task Test_events_of_every_type_are_signed_verified_and_processed_and_the_live_view_streams_them()
    {
        var tenant = await stack.CreateTenantAsync();
        var (engine, _) = await StartAsync();
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Scope);

        // A watcher first: the stream's headers come once it is registered.
        using var watch = await stack.SendEngineClientAsync(engine, tenant, Scope);
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/webhook-gateway/events/stream");
        using var stream = await watch.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var lines = new StreamReader(await stream.Content.ReadAsStreamAsync());

        var ids = new List<string>();
        foreach (var type in GatewayTestEventTypes.All)
        {
            var test = await StackFixture.PostAsync<GatewayTestEventResponse>(se, "api/webhook-gateway/test-events", new GatewayTestEventRequest(type));
            Assert.Equal(200, test.Response.Status);
            Assert.Equal("POST", test.Request.Method);
            Assert.EndsWith("/api/tencent/ses/webhook", test.Request.Url, StringComparison.Ordinal);
            Assert.Contains("redacted", test.Request.Headers["X-Tencent-Signature"], StringComparison.Ordinal);
            Assert.Contains("\"stored\":1", test.Response.Body, StringComparison.Ordinal);
            Assert.Equal("test", test.Outcome);
            var entry = await GetAsync<GatewayEntryResponse>(se, $"api/webhook-gateway/events/{test.EntryId}");
            Assert.Equal(GatewayVerifications.Ok, entry.Entry.Verification);
            Assert.Equal(GatewayRecorder.TestSource, entry.Entry.Source);
            Assert.Equal(tenant.TenantId, entry.Entry.TenantId);
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(test.Request.Body), JsonNode.Parse(entry.Body)), entry.Body);
            Assert.NotEqual("unknown", entry.Changes.Single().EventType);
            ids.Add(test.EntryId!);
        }
        using (var invalid = await se.PostAsJsonAsync("api/webhook-gateway/test-events", new GatewayTestEventRequest("nope"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        }

        // Each entry reached the watcher (once the processor attributed it to the tenant), as the list's columns only:
        // what the list says of it, without the tenant, method, path, headers or body (the detail has those).
        var seen = new HashSet<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!ids.All(seen.Contains))
        {
            var line = await lines.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("stream ended");
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                AssertStreamEntry(line[6..]);
                var e = JsonSerializer.Deserialize<GatewayStreamEntry>(line[6..], StackFixture.Json)!;
                var listed = (await GetAsync<GatewayEntryResponse>(se, $"api/webhook-gateway/events/{e.EntryId}")).Entry;
                Assert.Equal(listed.ReceivedAt, e.ReceivedAt);
                Assert.Equal((listed.Source, listed.Verification, listed.StatusCode, listed.Events), (e.Source, e.Verification, e.StatusCode, e.Events));
                Assert.Equal(listed.EventTypes, e.EventTypes);
                Assert.Contains(e.Result, new[] { GatewayResults.Pending, GatewayResults.NoEffect });
                seen.Add(e.EntryId);
            }
        }
    }

    /// <summary>A stream entry carries exactly the list's columns: every watcher of a scope receives every entry, so
    /// nothing more (the live view's cost is its bytes; docs/performance.md).</summary>
    private static void AssertStreamEntry(string data)
    {
        var names = JsonNode.Parse(data)!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["entry_id", "event_types", "events", "received_at", "result", "source", "status_code", "verification"], names);
    }

    [Fact]
    public async Task Watchers_in_different_phases_each_get_every_entry_of_a_burst_exactly_once_in_order()
    {
        // Long intervals: the burst piles up between passes, so a pass encodes more than one chunk (GatewayFeed.ChunkBytes).
        // Eight watchers in four phases: the feed writes to two of them every 250 ms, each pass's chunks spread over the next second.
        var (engine, db) = await StartAsync(new()
        {
            ["WebhookGateway:StreamPollInterval"] = "00:00:01",
            ["WebhookGateway:StreamMinInterval"] = "00:00:01",
            ["WebhookGateway:StreamPhases"] = "4",
            ["WebhookGateway:StreamBuffer"] = "1000",
            ["WebhookGateway:StreamMaxEntriesPerSecond"] = "0",
        });
        await using var _e = engine;
        var token = await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret);
        var watchers = new List<(HttpClient Client, HttpResponseMessage Response, StreamReader Lines)>();
        try
        {
            for (var i = 0; i < 8; i++)
            {
                var client = engine.CreateClient();
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
                var response = await client.GetAsync("admin/webhook-gateway/events/stream", HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
                watchers.Add((client, response, new StreamReader(await response.Content.ReadAsStreamAsync())));
            }

            Assert.Equal(8, engine.Services.GetRequiredService<GatewayFeed>().Watchers);
            // A burst of forged callbacks, 8 at a time: each is refused and logged in the platform log, and never written again.
            using var hook = engine.CreateClient();
            var body = Json(new { eventType = "delivered", messageId = "gateway-burst", email = "burst@example.com", timestamp = Now() });
            const int burst = 400;
            await Parallel.ForEachAsync(Enumerable.Range(0, burst), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, _) =>
            {
                var (status, id, _) = await PostSignedAsync(hook, body, key: "not-the-signing-key-0123456789");
                Assert.Equal(HttpStatusCode.Unauthorized, status);
                Assert.NotNull(id);
            });
            // Then one more after every answer: it is in the log too.
            var (_, lastId, _) = await PostSignedAsync(hook, body, key: "not-the-signing-key-0123456789");
            // Refused requests are answered before their entry is written (queued to the writer): wait for all of them.
            await WaitUntilAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_gateway_entries WHERE tenant_id IS NULL") >= burst + 1);
            var expected = (await TestSql.ScalarAsync<string>(db, "SELECT string_agg(id::text, ',' ORDER BY seq) FROM webhook_gateway_entries WHERE tenant_id IS NULL"))
                .Split(',').Select(Guid.Parse).ToList();
            Assert.Equal(burst + 1, expected.Count);
            // Two writers insert at once (EmailEvents:Writers), so seq order is not quite the order of arrival, and a later
            // seq can commit before an earlier one: the stream still has each entry once, in seq order. Once a watcher has
            // the last seq it has had every chance to receive a duplicate, or to have skipped one.
            Assert.Contains(Guid.Parse(lastId!), expected);

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            foreach (var (_, _, lines) in watchers)
            {
                var received = new List<Guid>();
                while (received.Count == 0 || received[^1] != expected[^1])
                {
                    var line = await lines.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("stream ended");
                    if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        AssertStreamEntry(line[6..]);
                        var e = JsonSerializer.Deserialize<GatewayStreamEntry>(line[6..], StackFixture.Json)!;
                        Assert.Equal(GatewayVerifications.BadSignature, e.Verification);
                        Assert.Equal((401, GatewayResults.Rejected), (e.StatusCode, e.Result));
                        received.Add(Guid.Parse(e.EntryId));
                    }
                    else
                    {
                        // Nothing but whole frames: "event: entry", its data line, a blank line (or the opening comment, or
                        // a heartbeat when a loaded machine took 15 s to post the first callbacks).
                        Assert.True(line is "event: entry" or "" or ": watching" or ": heartbeat", line);
                    }
                }
                Assert.Equal(expected, received);
            }
        }
        finally
        {
            foreach (var (client, response, lines) in watchers)
            {
                lines.Dispose();
                response.Dispose();
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task Past_the_live_views_rate_a_watcher_gets_the_first_entries_of_each_pass_and_the_number_skipped_and_the_log_keeps_all()
    {
        // 20 entries a second at most, passes every 100 ms: a burst of 300 is mostly told as skipped, never dropped unsaid.
        const int perSecond = 20, burst = 300;
        var (engine, db) = await StartAsync(new()
        {
            ["WebhookGateway:StreamMinInterval"] = "00:00:00.100",
            ["WebhookGateway:StreamMaxEntriesPerSecond"] = perSecond.ToString(CultureInfo.InvariantCulture),
        });
        await using var _e = engine;
        using var watch = engine.CreateClient();
        watch.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        using var response = await watch.GetAsync("admin/webhook-gateway/events/stream", HttpCompletionOption.ResponseHeadersRead);
        using var lines = new StreamReader(await response.Content.ReadAsStreamAsync());

        using var hook = engine.CreateClient();
        var body = Json(new { eventType = "delivered", messageId = "gateway-rate", email = "rate@example.com", timestamp = Now() });
        var started = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, burst), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (_, _) =>
        {
            var (status, _, _) = await PostSignedAsync(hook, body, key: "not-the-signing-key-0123456789");
            Assert.Equal(HttpStatusCode.Unauthorized, status);
        });
        await WaitUntilAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_gateway_entries WHERE tenant_id IS NULL") >= burst);
        var expected = (await TestSql.ScalarAsync<string>(db, "SELECT string_agg(id::text, ',' ORDER BY seq) FROM webhook_gateway_entries WHERE tenant_id IS NULL"))
            .Split(',').Select(Guid.Parse).ToList();
        // The log has them all.
        Assert.Equal(burst, expected.Count);

        // Every entry is either streamed or counted in a skipped event, once.
        var received = new List<Guid>();
        var skipped = 0L;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string? eventName = null;
        while (received.Count + skipped < burst)
        {
            var line = await lines.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("stream ended");
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                eventName = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var data = JsonNode.Parse(line[6..])!;
                if (eventName == "skipped")
                {
                    var n = data["skipped_entries"]!.GetValue<long>();
                    Assert.True(n > 0);
                    skipped += n;
                }
                else
                {
                    Assert.Equal("entry", eventName);
                    received.Add(Guid.Parse(data["entry_id"]!.GetValue<string>()));
                }
            }
        }
        var seconds = started.Elapsed.TotalSeconds;
        Assert.Equal(burst, received.Count + skipped);
        Assert.True(skipped > 0, "nothing was skipped");
        // Those streamed are distinct, in seq order, and no more than the allowance: one second's worth to start with,
        // then the rate.
        Assert.Equal(received.Count, received.Distinct().Count());
        Assert.Equal(received, expected.Where(received.Contains));
        Assert.True(received.Count <= perSecond * (1 + seconds) + 1, $"{received.Count} streamed in {seconds:0.0} s at {perSecond}/s");
    }

    [Fact]
    public async Task A_watcher_gets_the_entries_of_every_process_on_the_database_once_each_in_order_its_own_without_reading_them_back()
    {
        // Two Send Engines on one database, as a deployment of several processes: the watcher's engine streams its own
        // writer's entries as handed over, and reads the other's from the database, each once, all in seq order.
        var slow = new Dictionary<string, string?>
        {
            ["WebhookGateway:StreamPollInterval"] = "00:00:00.300",
            ["WebhookGateway:StreamMinInterval"] = "00:00:00.100",
            ["WebhookGateway:StreamBuffer"] = "1000",
            ["WebhookGateway:StreamMaxEntriesPerSecond"] = "0",
        };
        var (engine, db) = await StartAsync(slow);
        await using var _e = engine;
        await using var second = StartOn(db, slow);
        var feed = engine.Services.GetRequiredService<GatewayFeed>();
        using var watch = engine.CreateClient();
        watch.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        using var response = await watch.GetAsync("admin/webhook-gateway/events/stream", HttpCompletionOption.ResponseHeadersRead);
        using var lines = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.True(feed.Watched);

        // Accepted callbacks for a message nobody sent (stored, pending, then no effect: they stay in the platform log)
        // and forged ones (refused), to both engines at once.
        using var first = engine.CreateClient();
        using var other = second.CreateClient();
        HttpClient[] hooks = [first, other];
        const int burst = 200;
        await Parallel.ForEachAsync(Enumerable.Range(0, burst), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var body = Json(new { eventType = "delivered", messageId = $"gateway-two.{i}", email = "two@example.com", timestamp = Now() });
            var (status, id, _) = await PostSignedAsync(hooks[i % 2], body, key: i % 3 == 0 ? "not-the-signing-key-0123456789" : SigningKey);
            Assert.Equal(i % 3 == 0 ? HttpStatusCode.Unauthorized : HttpStatusCode.OK, status);
            Assert.NotNull(id);
        });
        await WaitUntilAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_gateway_entries") >= burst);
        var expected = (await TestSql.ScalarAsync<string>(db, "SELECT string_agg(id::text, ',' ORDER BY seq) FROM webhook_gateway_entries"))
            .Split(',').Select(Guid.Parse).ToList();
        Assert.Equal(burst, expected.Count);

        var received = new List<GatewayStreamEntry>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (received.Count == 0 || Guid.Parse(received[^1].EntryId) != expected[^1])
        {
            var line = await lines.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("stream ended");
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                AssertStreamEntry(line[6..]);
                received.Add(JsonSerializer.Deserialize<GatewayStreamEntry>(line[6..], StackFixture.Json)!);
            }
        }
        Assert.Equal(expected, received.Select(e => Guid.Parse(e.EntryId)));
        // What was streamed is what the list says, whether handed over by the writer or read back.
        var listed = (await GetAsync<GatewayEntryPage>(watch, $"admin/webhook-gateway/events?limit={burst}")).Items.ToDictionary(i => i.EntryId);
        foreach (var e in received)
        {
            var l = listed[e.EntryId];
            Assert.Equal((l.ReceivedAt, l.Source, l.Verification, l.StatusCode, l.Events), (e.ReceivedAt, e.Source, e.Verification, e.StatusCode, e.Events));
            Assert.Equal(l.EventTypes, e.EventTypes);
            Assert.Contains(e.Result, e.StatusCode == 200 ? new[] { GatewayResults.Pending, GatewayResults.NoEffect } : [GatewayResults.Rejected]);
        }
        // The other engine's entries (half of them) were read from the database; this one's mostly not (only those its
        // writer had not handed over yet when a pass read the seqs after its last one).
        var counts = $"read back {feed.EntriesReadBack}, handed over {feed.EntriesHandedOver}";
        Assert.True(feed.EntriesReadBack + feed.EntriesHandedOver == burst, counts);
        Assert.True(feed.EntriesReadBack >= burst / 2, counts);
        Assert.True(feed.EntriesHandedOver >= burst / 4, counts);
    }

    [Fact]
    public async Task The_log_is_trimmed_to_the_newest_entries_per_tenant()
    {
        var tenant = await stack.CreateTenantAsync();
        var (engine, db) = await StartAsync(new() { ["WebhookGateway:KeepPerTenant"] = "10", ["WebhookGateway:SweepInterval"] = "00:00:00.300" });
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Scope);
        using var hook = engine.CreateClient();
        var ids = new List<string>();
        for (var i = 0; i < 14; i++)
        {
            var sample = GatewayTestEvents.Sample(Guid.Parse(tenant.TenantId), GatewayTestEventTypes.Open, DateTimeOffset.UtcNow);
            var (status, id, _) = await PostSignedAsync(hook, Json(sample));
            Assert.Equal(HttpStatusCode.OK, status);
            ids.Add(id!);
        }
        await WaitUntilAsync(async () => await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM webhook_gateway_entries WHERE tenant_id = $1", Guid.Parse(tenant.TenantId)) == 10
            && await TestSql.ScalarAsync<long>(db, "SELECT count(*) FROM email_events WHERE processed_at IS NULL") == 0);
        var page = await GetAsync<GatewayEntryPage>(se, "api/webhook-gateway/events");
        Assert.Equal(ids.Skip(4).Reverse(), page.Items.Select(i => i.EntryId));
    }

    [Fact]
    public async Task An_outbound_attempt_is_listed_and_replayed_to_a_real_receiver_with_the_same_webhook_id()
    {
        var (tenant, _) = await stack.CreateTenantWithSubscribersAsync(1, "gw-replay");
        await using var receiver = new WebhookReceiver();
        var (engine, _) = await StartAsync(new()
        {
            ["Webhooks:AllowPrivateNetworks"] = "true",
            ["Webhooks:PollInterval"] = "00:00:00.100",
            ["Webhooks:SubscriptionCacheTtl"] = "00:00:00",
        });
        await using var _e = engine;
        using var se = await stack.SendEngineClientAsync(engine, tenant, Scope);
        using (var created = await se.PostAsJsonAsync("api/webhook-endpoints", new CreateWebhookEndpointRequest(receiver.Url, [WebhookEventTypes.Sent], "gw"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }
        await RunJobAsync(se, tenant);
        var first = (await receiver.WaitForAsync(r => r.Count >= 1, what: "the sent event")).Single();
        var attempts = await WaitForPageAsync<WebhookAttemptPage>(se, "api/webhook-gateway/attempts", p => p.Items.Count == 1);
        var attempt = attempts.Items.Single();
        Assert.Equal(first.Id, attempt.MessageId);
        Assert.Equal(200, attempt.ResponseStatus);

        var other = await stack.CreateTenantAsync();
        using var stranger = await stack.SendEngineClientAsync(engine, other, Scope);
        using (var foreign = await stranger.PostAsync($"api/webhook-gateway/attempts/{attempt.AttemptId}/replay", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
        Assert.Empty((await GetAsync<WebhookAttemptPage>(stranger, "api/webhook-gateway/attempts")).Items);

        using (var replayed = await se.PostAsync($"api/webhook-gateway/attempts/{attempt.AttemptId}/replay", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, replayed.StatusCode);
        }
        var both = await receiver.WaitForAsync(r => r.Count >= 2, what: "the replay");
        Assert.Equal(first.Id, both[1].Id);
        Assert.Equal(first.Body, both[1].Body);
        var after = await WaitForPageAsync<WebhookAttemptPage>(se, "api/webhook-gateway/attempts", p => p.Items.Count == 2);
        Assert.True(after.Items[0].Replay);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>A Send Engine of its own with signature verification, listening on a loopback port.</summary>
    private async Task<(SendEngineFactory Engine, string Db)> StartAsync(Dictionary<string, string?>? overrides = null)
    {
        var db = await stack.CreateSendEngineDatabaseAsync();
        return (StartOn(db, overrides), db);
    }

    /// <summary>A Send Engine on database <paramref name="db"/> (one more process of the same deployment when another
    /// already runs on it).</summary>
    private SendEngineFactory StartOn(string db, Dictionary<string, string?>? overrides = null)
    {
        var settings = TencentWebhookSigning.Settings(SigningKey, new Dictionary<string, string?>
        {
            ["WebhookGateway:StreamPollInterval"] = "00:00:00.200",
            ["WebhookGateway:StreamMinInterval"] = "00:00:00.010",
        });
        foreach (var (k, v) in overrides ?? [])
        {
            settings[k] = v;
        }
        // On Kestrel: the test console posts to the address the server listens on, over real HTTP.
        var engine = stack.CreateSendEngine(db, settings);
        engine.UseKestrel(FreePort.Get());
        engine.StartServer();
        return engine;
    }

    private static async Task<(HttpStatusCode Status, string? EntryId, string Signature)> PostSignedAsync(HttpClient hook, string body, string key = SigningKey)
    {
        using var request = TencentWebhookSigning.Request(body, key);
        var signature = request.Headers.GetValues("X-Tencent-Signature").Single();
        using var response = await hook.SendAsync(request);
        return (response.StatusCode, response.Headers.TryGetValues(GatewayRecorder.EntryHeader, out var v) ? v.Single() : null, signature);
    }

    private static async Task<string> RunJobAsync(HttpClient se, TestTenant tenant)
    {
        using var created = await se.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Gateway", null, "Hi", null), StackFixture.Json);
        var id = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
        await StackFixture.WaitForJobAsync(se, id, j => j.Status == SendJobStatuses.Completed);
        return id;
    }

    private static async Task<IReadOnlyList<SendJobRecipientResponse>> RecipientsAsync(HttpClient se, string jobId) =>
        (await se.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{jobId}/recipients?limit=100", StackFixture.Json))!.Items;

    private static async Task<T> GetAsync<T>(HttpClient client, string url)
    {
        using var response = await client.GetAsync(url);
        return await StackFixture.ReadAsync<T>(response, HttpStatusCode.OK);
    }

    private static async Task<GatewayEntryResponse> WaitForAsync(HttpClient se, string entryId, Func<GatewayEntryResponse, bool> done)
    {
        GatewayEntryResponse? last = null;
        await WaitUntilAsync(async () =>
        {
            using var response = await se.GetAsync($"api/webhook-gateway/events/{entryId}");
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return false; // not attributed to the tenant yet
            }
            last = await StackFixture.ReadAsync<GatewayEntryResponse>(response, HttpStatusCode.OK);
            return done(last);
        }, () => JsonSerializer.Serialize(last));
        return last!;
    }

    private static async Task<TPage> WaitForPageAsync<TPage>(HttpClient client, string url, Func<TPage, bool> done)
    {
        TPage? last = default;
        await WaitUntilAsync(async () => done(last = await GetAsync<TPage>(client, url)), () => JsonSerializer.Serialize(last));
        return last!;
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition, Func<string>? state = null) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(60), () => "timed out; last: " + state?.Invoke() + "\n" + ServiceLogs.Dump(), TimeSpan.FromMilliseconds(100));

    private static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private static string Json(object o) => JsonSerializer.Serialize(o);
}
