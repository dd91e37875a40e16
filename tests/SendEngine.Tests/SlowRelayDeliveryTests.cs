using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// Issue 10's first finding, end to end: a relay that queues the message when the final dot arrives and answers after
/// the end-of-DATA timeout got the same message three times. Now the recipient is recorded with an unknown outcome
/// and the relay holds exactly one copy.
/// </summary>
public sealed class SlowRelayDeliveryTests(StackFixture stack)
{
    [Fact]
    public async Task A_relay_answering_after_the_data_timeout_gets_one_copy_and_the_recipient_an_unknown_outcome()
    {
        var tenant = await stack.CreateTenantAsync();
        var email = $"slow@{StackFixture.UniqueDomain()}";
        await stack.SubscribeAsync(tenant, [email]);
        await using var relay = await FaultSmtpServer.StartAsync("--data-delay", "6");
        await using var se = stack.CreateSendEngine(await stack.Postgres.CreateDatabaseAsync("se"), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = relay.Host,
            ["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture),
            ["Smtp:DataTimeout"] = "00:00:02",
            ["SendJobs:RetryBaseDelay"] = "00:00:00.100",
        });
        using var client = se.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Slow relay", null, "x", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);

        var row = (await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients", StackFixture.Json))!.Items.Single();
        // Recorded failed until the worker gets its own 'unknown' status (issue 10); never retried either way.
        Assert.Equal(("failed", 1), (row.Status, row.Attempts));
        Assert.StartsWith("outcome unknown: ", row.Detail);
        Assert.EndsWith("; not retried to avoid a duplicate", row.Detail);
        Assert.Equal(1, done.Counts.Failed);
        Assert.Equal(1, await relay.WaitForCopiesAsync(row.MessageId!, 1, TimeSpan.FromSeconds(10)));
        // Past the relay's delay and a few retry intervals: still one copy.
        await Task.Delay(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        Assert.Single(relay.Accepted);
    }
}
