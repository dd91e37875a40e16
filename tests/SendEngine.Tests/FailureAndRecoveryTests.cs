using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Newsletter.Contracts;
using Newsletter.TestSupport;
using Npgsql;

namespace SendEngine.Tests;

public sealed class FailureAndRecoveryTests(StackFixture stack)
{
    private async Task<(TestTenant Tenant, List<string> Emails)> TenantWithSubscribersAsync(int count, string prefix)
    {
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var emails = Enumerable.Range(1, count).Select(i => $"{prefix}{i}@{domain}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        return (tenant, emails);
    }

    [Theory]
    [InlineData("-f", "5", 1)] // hard reject of RCPT: recorded as failed at once, with the reply
    [InlineData("-r", "4", 2)] // soft reject: retried with backoff until MaxAttempts, then failed
    public async Task Smtp_rejections_are_recorded_with_the_server_reply(string sinkOption, string replyClass, int attempts)
    {
        // ./test.sh installs it: missing is a broken environment, not a reason to pass quietly.
        Assert.True(SmtpSinkServer.Executable is not null, "smtp-sink (postfix) is not installed: run ./test.sh, which installs it, or apt-get install postfix");
        await using var sink = await SmtpSinkServer.StartAsync(sinkOption, "rcpt");
        var (tenant, emails) = await TenantWithSubscribersAsync(3, "rej");
        await using var se = stack.CreateSendEngine(await stack.Postgres.CreateDatabaseAsync("se"), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = sink.Host,
            ["Smtp:Port"] = sink.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SendJobs:MaxAttempts"] = "2",
        });
        using var client = se.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Rejected", null, "x", null), StackFixture.Json);
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);

        var done = await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        Assert.Equal(new SendJobCounts(3, 0, 3, 0, 0, 0, 0), done.Counts);
        var rows = (await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{job.Id}/recipients?status=failed", StackFixture.Json))!.Items;
        Assert.Equal(emails.Order(), rows.Select(r => r.Email).Order());
        Assert.All(rows, r =>
        {
            Assert.StartsWith(replyClass, r.Detail);
            Assert.Equal(attempts, r.Attempts);
        });
    }

    [Fact]
    public async Task A_mailbox_the_server_refuses_as_unknown_is_suppressed_and_reported_and_not_mailed_again()
    {
        Assert.True(SmtpSinkServer.AiosmtpdPython is not null, "python3-aiosmtpd is not installed: run ./test.sh, which installs it, or apt-get install python3-aiosmtpd");
        await using var server = await SmtpSinkServer.StartRejectingUnknownUsersAsync();
        var tenant = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        var (gone, ok) = ($"unknown-{Guid.NewGuid():N}@{domain}", $"reader@{domain}");
        await stack.SubscribeAsync(tenant, [gone, ok]);
        await using var se = stack.CreateSendEngine(await stack.Postgres.CreateDatabaseAsync("se"), new Dictionary<string, string?>
        {
            ["Smtp:Host"] = server.Host,
            ["Smtp:Port"] = server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var client = se.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        async Task<SendJobResponse> RunJobAsync()
        {
            using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, "Hello", null, "x", null), StackFixture.Json);
            var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
            return await StackFixture.WaitForJobAsync(client, job.Id, j => j.Status == SendJobStatuses.Completed);
        }

        var first = await RunJobAsync();
        Assert.Equal((2, 1, 1), (first.Counts.Total, first.Counts.Sent, first.Counts.Failed));
        var rejected = (await client.GetFromJsonAsync<SendJobRecipientPage>($"api/send-jobs/{first.Id}/recipients?status=failed", StackFixture.Json))!.Items.Single();
        Assert.StartsWith("550 5.1.1", rejected.Detail);

        // Suppressed at once in Send Engine; Member Center learns of it through the report queue.
        var suppressions = (await client.GetFromJsonAsync<SuppressionPage>("api/suppressions", StackFixture.Json))!.Items;
        var suppression = Assert.Single(suppressions);
        Assert.Equal((gone, "hard_bounce", "delivery"), (suppression.Email, suppression.Reason, suppression.Source));
        using var internalClient = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.SendEngineClientId, stack.SendEngineClientSecret));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await StackFixture.PostAsync<SubscriptionStatusResult>(internalClient, $"internal/lists/{tenant.ListId}/not-sendable",
                   new SubscriptionStatusQuery(tenant.TenantId, tenant.ListId, [gone, ok]))).NotSendable.Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "Member Center never marked the address undeliverable");
            await Task.Delay(200);
        }

        var second = await RunJobAsync();
        Assert.Equal((1, 0), (second.Counts.Sent, second.Counts.Failed));
    }

    // Group size 1: one row per connection in 'sending'. Group size 4 (rate 80/s lets groups of up to 4 form): more rows
    // per connection may end "outcome unknown", still nobody mailed twice. Pages of the snapshot are small, so the list
    // is read in several pages (the second process resumes whatever the first left).
    [Theory]
    [InlineData(1, 30, "6", 8, 7)]
    [InlineData(4, 200, "80", 24, 30)]
    public async Task A_killed_process_is_resumed_by_another_and_nobody_is_mailed_twice(int groupSize, int recipients, string rate, int killAfter, int pageSize)
    {
        Assert.True(recipients / pageSize >= 3, "the list must span several snapshot pages");
        var (tenant, emails) = await TenantWithSubscribersAsync(recipients, "crash");
        var db = await stack.Postgres.CreateDatabaseAsync("se");
        const int connections = 2;
        var settings = new Dictionary<string, string?>
        {
            ["Delivery:MessagesPerSecond"] = rate,
            ["Delivery:Concurrency"] = connections.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Delivery:GroupSize"] = groupSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SendJobs:BatchSize"] = "4",
            ["SendJobs:Lease"] = "00:00:03",
            ["Hangfire:InvisibilityTimeout"] = "00:00:05",
            ["MemberCenter:PageSize"] = pageSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        var subject = "Crash " + Guid.NewGuid().ToString("N")[..8];
        var port = FreePort.Get();
        using var process = StartSendEngineProcess(stack.SendEngineSettings(db, settings), port, out var output);
        string jobId;
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            await WaitUntilAsync(async () => (await TryGetAsync(client, "health/live")) == HttpStatusCode.OK, process, output);
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
            using var created = await client.PostAsJsonAsync("api/send-jobs", new CreateSendJobRequest(null, tenant.ListId, null, subject, null, "{{ email }}", null), StackFixture.Json);
            jobId = (await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created)).Id;
            // Straight from the database (the API's counts are cached for a second): kill as soon as killAfter are sent.
            await WaitUntilAsync(async () => (await RecipientRowsAsync(db, jobId)).Count(r => r.Status == RecipientStatuses.Sent) >= killAfter, process, output);
        }
        finally
        {
            process.Kill(entireProcessTree: true); // SIGKILL: no graceful shutdown, leases and Hangfire state left behind
            await process.WaitForExitAsync();
        }

        // What the dead process left: an unfinished job with rows in hand (claimed, maybe in an SMTP transaction).
        var atKill = await RecipientRowsAsync(db, jobId);
        Assert.Equal(SendJobStatuses.Sending, await JobStatusAsync(db, jobId));
        var sentAtKill = atKill.Where(r => r.Status == RecipientStatuses.Sent).Select(r => r.Email).ToHashSet();
        var sendingAtKill = atKill.Where(r => r.Status == RecipientStatuses.Sending).Select(r => r.Email).ToHashSet();
        var inHand = atKill.Count(r => r.Status is RecipientStatuses.Claimed or RecipientStatuses.Sending);
        Assert.True(sentAtKill.Count < recipients, "the job had finished before the kill");
        Assert.True(inHand > 0, "no row was claimed or sending at the kill: " + string.Join(", ", atKill.GroupBy(r => r.Status).Select(g => $"{g.Key} {g.Count()}")));
        Assert.True(sendingAtKill.Count <= connections * groupSize, $"{sendingAtKill.Count} rows sending at the kill");

        // A fresh process on the same database picks the job up (Hangfire re-runs it once its invisibility timeout passes).
        await using var second = stack.CreateSendEngine(db, settings);
        using var se = second.CreateClient();
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await stack.SendTokenAsync(tenant));
        var done = await StackFixture.WaitForJobAsync(se, jobId, j => j.Status == SendJobStatuses.Completed, TimeSpan.FromSeconds(180));
        Assert.Equal(recipients, done.Counts.Total);
        Assert.Equal(0, done.Counts.Remaining);

        var rows = await RecipientRowsAsync(db, jobId);
        Assert.Equal(emails.Order(), rows.Select(r => r.Email).Order());
        var sent = rows.Where(r => r.Status == RecipientStatuses.Sent).Select(r => r.Email).ToHashSet();
        var unknown = rows.Where(r => r.Status == RecipientStatuses.Failed).ToList();
        // Exactly the rows in an SMTP transaction at the kill are unknown; everything else was sent, most by the second process.
        Assert.All(unknown, r => Assert.StartsWith("outcome unknown", r.Detail));
        Assert.Equal(sendingAtKill.Order(), unknown.Select(r => r.Email).Order());
        Assert.Equal(recipients, sent.Count + unknown.Count);
        Assert.Subset(sent, sentAtKill);
        Assert.True(sent.Count > sentAtKill.Count, "the second process sent nothing");

        // Copies per address at the catcher: one for every sent row; none or one for an unknown row; none twice.
        foreach (var email in sent)
        {
            await stack.Mail.WaitForMailAsync(m => m.Subject == subject && m.To.Contains(email), TimeSpan.FromSeconds(60));
        }
        var copies = (await stack.Mail.ListAsync()).Where(m => m.Subject == subject).SelectMany(m => m.To).GroupBy(e => e).ToDictionary(g => g.Key, g => g.Count());
        var wrong = emails.Select(e => (Email: e, Copies: copies.GetValueOrDefault(e)))
            .Where(x => sent.Contains(x.Email) ? x.Copies != 1 : x.Copies > 1).ToList();
        Assert.True(wrong.Count == 0, "copies per address: " + string.Join(", ", wrong.Select(x => $"{x.Email} ({(sent.Contains(x.Email) ? "sent" : "unknown")}) x{x.Copies}")));
        Assert.Subset(emails.ToHashSet(), copies.Keys.ToHashSet());
    }

    private static async Task<List<(string Email, string Status, string? Detail)>> RecipientRowsAsync(string db, string jobId)
    {
        var rows = new List<(string Email, string Status, string? Detail)>();
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT email, status, detail FROM send_job_recipients WHERE job_id = $1", conn) { Parameters = { new() { Value = Guid.Parse(jobId) } } };
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
        }
        return rows;
    }

    private static async Task<string> JobStatusAsync(string db, string jobId)
    {
        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT status FROM send_jobs WHERE id = $1", conn) { Parameters = { new() { Value = Guid.Parse(jobId) } } };
        return (string)(await cmd.ExecuteScalarAsync())!;
    }

    private static Process StartSendEngineProcess(Dictionary<string, string?> settings, int port, out StringBuilder output)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        var projectDir = Path.Combine(RepoPaths.Root, "SendEngine");
        var dll = Path.Combine(projectDir, "bin", configuration, "net10.0", "SendEngine.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing; build the solution first");
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = projectDir };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add($"http://127.0.0.1:{port}");
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        foreach (var (k, v) in settings)
        {
            psi.Environment[k.Replace(":", "__", StringComparison.Ordinal)] = v;
        }
        var log = new StringBuilder();
        output = log;
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task<HttpStatusCode?> TryGetAsync(HttpClient client, string url)
    {
        try
        {
            using var response = await client.GetAsync(url);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, Process process, StringBuilder output)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            Assert.False(process.HasExited, "Send Engine exited: " + output);
            if (await condition())
            {
                return;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException("Send Engine did not start: " + output);
    }
}
