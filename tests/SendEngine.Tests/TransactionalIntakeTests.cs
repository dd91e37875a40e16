using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Transactional;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>
/// The group commit of POST /api/v1/email (TransactionalIntake): concurrent requests share transactions, each answer
/// still names its own tasks, Idempotency-Keys still hold inside a group, and nothing answered 200 is lost when Send
/// Engine is SIGKILLed or its PostgreSQL crashes (pg_ctl stop -m immediate) under load. The dispatchers are off: what is
/// checked is what was stored, not what was sent.
/// </summary>
[LongRunning(115)]
public sealed class TransactionalIntakeTests(StackFixture stack)
{
    private static readonly Dictionary<string, string?> NoDispatch = new() { ["Transactional:Dispatchers"] = "0" };

    [Fact]
    public async Task Concurrent_requests_share_commits_and_each_answer_names_its_own_stored_tasks()
    {
        var (engine, db) = await stack.StartSendEngineAsync(NoDispatch);
        await using var _ = engine;
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        using var se = await stack.SendEngineClientAsync(engine, tenant);
        using (var registered = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json))
        {
            Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
        }
        using var client = engine.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));

        // 40 distinct requests, and 4 keys each sent twice with the same body at the same moment.
        const int distinct = 40;
        var calls = Enumerable.Range(0, distinct).Select(i => (Email: $"r{i}@{domain}", Key: (string?)null))
            .Concat(Enumerable.Range(0, 4).SelectMany(i => new[] { (Email: $"k{i}@{domain}", Key: (string?)$"key-{i}"), (Email: $"k{i}@{domain}", Key: (string?)$"key-{i}") }))
            .ToList();
        var answers = await Task.WhenAll(calls.Select(c => PostAsync(client, Body(domain, c.Email), c.Key)));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        var byEmail = calls.Zip(answers).ToLookup(x => x.First.Email, x => x.Second.Answer!);
        foreach (var group in byEmail)
        {
            Assert.Single(group.Select(a => a.RequestId).Distinct()); // the two calls with one key: one request
            var task = Assert.Single(group.First().Tasks);
            Assert.Equal((group.Key, EmailTaskStatuses.Queued), (task.Email, task.Status));
            Assert.All(group, a => Assert.Equal(task.TaskId, Assert.Single(a.Tasks).TaskId));
        }
        var stored = await StoredAsync(db);
        Assert.Equal(distinct + 4, stored.Count);
        foreach (var group in byEmail)
        {
            var a = group.First();
            Assert.True(stored.TryGetValue(Guid.Parse(a.RequestId), out var row), $"request {a.RequestId} not stored");
            Assert.Equal((Guid.Parse(a.Tasks[0].TaskId), group.Key), (row.TaskId, row.Email));
        }
        // Rows written by one transaction share its xmin: fewer transactions than requests means they were grouped.
        var transactions = stored.Values.Select(r => r.Xmin).Distinct().Count();
        Assert.True(transactions < stored.Count, $"{stored.Count} requests in {transactions} transactions: none shared a commit");
    }

    [Fact]
    public Task No_request_answered_200_is_lost_when_Send_Engine_is_killed_under_load() =>
        AssertNoAcknowledgedRequestLostAsync((_, process, _) => process.KillAsync()); // SIGKILL while requests are in flight

    [Fact]
    public Task No_request_answered_200_is_lost_when_PostgreSQL_crashes_under_load() =>
        AssertNoAcknowledgedRequestLostAsync(async (postgres, process, load) =>
        {
            await postgres.StopAsync(immediate: true, TestContext.Current.CancellationToken); // pg_ctl stop -m immediate: no checkpoint
            await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken); // requests keep coming and fail
            await postgres.StartAsync(TestContext.Current.CancellationToken); // WAL replay: only what was committed
            var afterRestart = load.Acknowledged.Count;
            await process.WaitUntilAsync(() => Task.FromResult(load.Acknowledged.Count >= afterRestart + 20), "no request stored after the restart");
            Assert.True(load.Failed > 0, "no request failed while PostgreSQL was down");
        });

    /// <summary>A Send Engine on a durable PostgreSQL (fsync and synchronous commit on) takes eight clients' requests;
    /// once 60 are answered the fault strikes, and every request answered 200 must then be stored.</summary>
    private async Task AssertNoAcknowledgedRequestLostAsync(Func<PostgresServer, SendEngineProcess, Load, Task> fault)
    {
        await using var postgres = await PostgresServer.StartDurableAsync(TestContext.Current.CancellationToken);
        var db = await postgres.CreateDatabaseAsync("se");
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        await using var process = await SendEngineProcess.StartAsync(stack.SendEngineSettings(db, NoDispatch));
        using var client = process.CreateClient();
        client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
        await RegisterDomainAsync(process, tenant, domain);

        var load = new Load(client, domain);
        await load.UntilAcknowledgedAsync(60);
        await fault(postgres, process, load);
        await AssertAllStoredAsync(db, await load.StopAsync());
    }

    /// <summary>Every request answered 200 is in the database with exactly the task its answer named.</summary>
    private static async Task AssertAllStoredAsync(string db, IReadOnlyCollection<SendEmailResponse> acknowledged)
    {
        var stored = await StoredAsync(db);
        var lost = acknowledged.Where(a => !stored.TryGetValue(Guid.Parse(a.RequestId), out var row) || row.TaskId != Guid.Parse(a.Tasks[0].TaskId)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {acknowledged.Count} acknowledged requests are not stored: {string.Join(", ", lost.Take(5).Select(a => a.RequestId))}");
        Assert.True(acknowledged.Count >= 60);
    }

    private async Task RegisterDomainAsync(SendEngineProcess process, TestTenant tenant, string domain)
    {
        using var bearer = process.CreateClient();
        bearer.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
        using var registered = await bearer.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json);
        Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
    }

    /// <summary>Eight clients posting one-recipient requests back to back until stopped, keeping every 200 answer.</summary>
    private sealed class Load
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task[] _clients;
        private int _failed;

        public Load(HttpClient client, string domain)
        {
            _clients = Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
            {
                for (var n = 0; !_stop.IsCancellationRequested; n++)
                {
                    try
                    {
                        var (status, answer) = await PostAsync(client, Body(domain, $"c{c}-{n}@{domain}"), null, _stop.Token);
                        if (status == HttpStatusCode.OK)
                        {
                            Acknowledged.Add(answer!);
                        }
                        else
                        {
                            Interlocked.Increment(ref _failed);
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        Interlocked.Increment(ref _failed);
                        if (!_stop.IsCancellationRequested)
                        {
                            await Task.Delay(50);
                        }
                    }
                }
            })).ToArray();
        }

        public ConcurrentBag<SendEmailResponse> Acknowledged { get; } = [];

        public int Failed => Volatile.Read(ref _failed);

        public async Task UntilAcknowledgedAsync(int count)
        {
            var until = DateTime.UtcNow.AddSeconds(90);
            while (Acknowledged.Count < count)
            {
                Assert.True(DateTime.UtcNow < until, $"only {Acknowledged.Count} requests answered 200 in 90 s ({Failed} failed)");
                await Task.Delay(20);
            }
        }

        public async Task<IReadOnlyCollection<SendEmailResponse>> StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_clients);
            return [.. Acknowledged];
        }
    }

    private static object Body(string domain, string email) => new
    {
        message = new
        {
            from_email = $"shop@{domain}",
            subject = "Receipt",
            html = "<p>Thank you</p>",
            to = new[] { new { email } },
        },
    };

    private static async Task<(HttpStatusCode Status, SendEmailResponse? Answer)> PostAsync(HttpClient client, object body, string? key,
        CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/email") { Content = JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }
        using var response = await client.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return response.StatusCode == HttpStatusCode.OK
            ? (response.StatusCode, JsonSerializer.Deserialize<SendEmailResponse>(text, StackFixture.Json))
            : (response.StatusCode, null);
    }

    /// <summary>Each stored request: its one task, the task's address, and the transaction that wrote the request.</summary>
    private static async Task<Dictionary<Guid, (Guid TaskId, string Email, string Xmin)>> StoredAsync(string db)
    {
        var rows = new Dictionary<Guid, (Guid, string, string)>();
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "SELECT r.id, t.id, t.email, r.xmin::text FROM transactional_requests r JOIN transactional_tasks t ON t.request_id = r.id", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            Assert.True(rows.TryAdd(reader.GetGuid(0), (reader.GetGuid(1), reader.GetString(2), reader.GetString(3))), "a request with two tasks");
        }
        return rows;
    }
}
