using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Transactional;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>
/// Transactional lease recovery (docs/send-engine.md "Delivery"): a Send Engine process SIGKILLed while its dispatcher is
/// in the middle of a group, against a real SMTP server that answers the end of DATA only after a delay (it has taken the
/// message before it answers, as an MTA that queued it), so the kill lands with DATA sent and no reply read. After a
/// restart on the same database, the tasks that were leased (sending) at the kill become unknown and are never sent
/// again, and every other task is sent exactly once: counted per recipient at the SMTP server.
/// </summary>
public sealed class TransactionalLeaseRecoveryTests(StackFixture stack)
{
    [Fact]
    public async Task A_dispatcher_killed_mid_group_leaves_its_group_unknown_and_the_rest_is_sent_exactly_once()
    {
        await using var relay = await FaultSmtpServer.StartAsync("--data-delay", "0.6");
        var db = await stack.CreateSendEngineDatabaseAsync();
        var settings = stack.SendEngineSettings(db, new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["Transactional:Dispatchers"] = "1",
            ["Transactional:GroupSize"] = "4",
            ["Transactional:Lease"] = "00:00:05",
            ["Transactional:PollInterval"] = "00:00:00.200",
        });
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var subject = "Lease " + Guid.NewGuid().ToString("N")[..8];
        var emails = Enumerable.Range(0, 16).Select(i => $"r{i}@{domain}").ToList();
        var taskOf = new Dictionary<string, Guid>();

        await using (var first = await SendEngineProcess.StartAsync(settings))
        {
            try
            {
                using (var bearer = first.CreateClient())
                {
                    bearer.DefaultRequestHeaders.Authorization = new("Bearer", await stack.SendTokenAsync(tenant));
                    using var registered = await bearer.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(domain), StackFixture.Json);
                    Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
                }
                using var client = first.CreateClient();
                client.DefaultRequestHeaders.Add("X-Pigeon-Api-Key", await stack.ApiKeyAsync(tenant));
                foreach (var email in emails)
                {
                    using var response = await client.PostAsJsonAsync("api/v1/email",
                        new { message = new { from_email = $"shop@{domain}", subject, text = "Your receipt", to = new[] { new { email } } } });
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    var answer = JsonSerializer.Deserialize<SendEmailResponse>(await response.Content.ReadAsStringAsync(), StackFixture.Json)!;
                    taskOf[email] = Guid.Parse(answer.Tasks[0].TaskId);
                }
                // Two groups' worth taken by the relay: the dispatcher is inside its second or third group, a message
                // handed over and its reply not yet read (0.6 s each).
                await first.WaitUntilAsync(() => Task.FromResult(relay.Accepted.Count(a => emails.Contains(a.Recipient)) >= 6),
                    "the relay took no messages");
            }
            finally
            {
                await first.KillAsync(); // SIGKILL: the lease and the group's sending marks stay behind
            }
        }

        var atKill = await TasksAsync(db, taskOf.Values);
        var takenAtKill = relay.Accepted.Where(a => emails.Contains(a.Recipient)).Select(a => a.Recipient).ToHashSet();
        var leased = atKill.Where(t => t.Value.Leased).Select(t => t.Key).ToHashSet();
        var sentAtKill = atKill.Where(t => t.Value.Status == EmailTaskStatuses.Sent).Select(t => t.Key).ToHashSet();
        Assert.True(leased.Count is > 0 and <= 4, $"{leased.Count} tasks leased at the kill (a group is 4)");
        Assert.True(sentAtKill.Count < emails.Count, "everything was sent before the kill");
        // Whatever the relay took and the database does not record as sent was in the group in flight.
        Assert.Subset(leased, takenAtKill.Select(e => taskOf[e]).Except(sentAtKill).ToHashSet());

        // A new process on the same database: the expired lease is recovered, the queue goes on.
        await using var second = await SendEngineProcess.StartAsync(settings);
        await second.WaitUntilAsync(async () => (await TasksAsync(db, taskOf.Values)).Values.All(t => !t.Leased && t.Status is not
            (EmailTaskStatuses.Queued or EmailTaskStatuses.Scheduled or EmailTaskStatuses.Sending)), "tasks still open after the restart");

        var final = await TasksAsync(db, taskOf.Values);
        var unknown = final.Where(t => t.Value.Status == EmailTaskStatuses.Unknown).Select(t => t.Key).ToHashSet();
        var sent = final.Where(t => t.Value.Status == EmailTaskStatuses.Sent).Select(t => t.Key).ToHashSet();
        Assert.Equal(leased.Order(), unknown.Order());
        Assert.All(final.Where(t => unknown.Contains(t.Key)), t => Assert.StartsWith("outcome unknown", t.Value.Detail));
        Assert.Equal(emails.Count, sent.Count + unknown.Count);
        Assert.Subset(sent, sentAtKill);
        Assert.True(sent.Count > sentAtKill.Count, "the second process sent nothing");
        Assert.Equal(0L, await ScalarAsync(db, "SELECT count(*) FROM transactional_deliveries"));

        // Copies per recipient at the relay (waiting out the last reply delays): one per sent task, none or one per
        // unknown task (its DATA may have gone before the kill), never two.
        await Task.Delay(TimeSpan.FromSeconds(2));
        var copies = relay.Accepted.Where(a => emails.Contains(a.Recipient)).GroupBy(a => a.Recipient).ToDictionary(g => g.Key, g => g.Count());
        var wrong = emails.Select(e => (Email: e, Copies: copies.GetValueOrDefault(e)))
            .Where(x => sent.Contains(taskOf[x.Email]) ? x.Copies != 1 : x.Copies > 1).ToList();
        Assert.True(wrong.Count == 0, "copies per recipient: " + string.Join(", ", wrong.Select(x => $"{x.Email} x{x.Copies}")));
        Assert.Contains(emails, e => unknown.Contains(taskOf[e]) && copies.GetValueOrDefault(e) == 1); // DATA went, not resent
    }

    private static async Task<Dictionary<Guid, (string Status, string? Detail, bool Leased)>> TasksAsync(string db, IEnumerable<Guid> ids)
    {
        var rows = new Dictionary<Guid, (string, string?, bool)>();
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("""
            SELECT t.id, t.status, t.detail, EXISTS (SELECT 1 FROM transactional_deliveries d WHERE d.task_id = t.id AND d.lease_until IS NOT NULL)
            FROM transactional_tasks t WHERE t.id = ANY($1)
            """, conn);
        cmd.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows[reader.GetGuid(0)] = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetBoolean(3));
        }
        return rows;
    }

    private static async Task<long> ScalarAsync(string db, string sql)
    {
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
