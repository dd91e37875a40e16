using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.ServiceDefaults;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;
using Npgsql;
using SendEngine.Data;

namespace SendEngine.Tests;

/// <summary>A tenant made for one test: a list, a send_api client and a tenant_api client.</summary>
public sealed record TestTenant(string TenantId, string ListId, string SendClientId, string SendClientSecret, string TenantClientId, string TenantClientSecret);

/// <summary>
/// PostgreSQL, maildev, the real Member Center on a Kestrel port (own database, issuer http://127.0.0.1:{port}/) and
/// a Send Engine (TestServer, own database) that validates Member Center's tokens and reads its internal API.
/// </summary>
public sealed class StackFixture : IAsyncLifetime
{
    public static readonly JsonSerializerOptions Json = CreateJson();

    public PostgresServer Postgres { get; } = new();
    public MailDevServer Mail { get; } = new();
    public MemberCenterFactory MemberCenter { get; private set; } = null!;
    public SendEngineFactory SendEngine { get; private set; } = null!;
    public string MemberCenterUrl { get; private set; } = "";
    public string MemberCenterConnectionString { get; private set; } = "";
    public string SendEngineConnectionString { get; private set; } = "";
    public string AdminClientId => "test-admin";
    public string AdminClientSecret { get; } = Secret();
    public string SendEngineClientId => "test-send-engine";
    public string SendEngineClientSecret { get; } = Secret();
    /// <summary>The console client Member Center seeds; nothing listens at its URL (PersonTokenTests reads the redirect).</summary>
    public string ConsoleClientSecret { get; } = Secret();
    public const string ConsoleUrl = "http://127.0.0.1:9/console";

    /// <summary>The basic credential of /metrics and /swagger on the public listener (Management__Username/Password).</summary>
    public const string ManagementUsername = "metrics";
    public const string ManagementPassword = "management-secret-0123";

    public static AuthenticationHeaderValue ManagementAuthorization { get; } =
        new("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{ManagementUsername}:{ManagementPassword}")));

    /// <summary>GET /metrics with the management credential.</summary>
    public static async Task<string> MetricsAsync(HttpClient client)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
        request.Headers.Authorization = ManagementAuthorization;
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET /metrics answered {(int)response.StatusCode}: {body}");
        return body;
    }

    /// <summary>
    /// GET /metrics until <paramref name="pattern"/> matches <paramref name="count"/> times (30 s, then the assertion
    /// fails with the last scrape). A counter is added on the thread that made the change a test waits for, after its
    /// commit, which a loaded machine may run a moment after the test has seen the change.
    /// </summary>
    public static async Task<string> WaitForMetricsAsync(HttpClient client, string pattern, int count = 1)
    {
        var regex = new System.Text.RegularExpressions.Regex(pattern);
        var until = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var body = await MetricsAsync(client);
            var matches = regex.Matches(body).Count;
            if (matches == count || DateTime.UtcNow > until)
            {
                Assert.True(matches == count, $"/metrics matched {pattern} {matches} times, not {count}:\n{body}");
                return body;
            }
            await Task.Delay(100);
        }
    }

    private HttpClient _mc = null!;
    private readonly SemaphoreSlim _templateLock = new(1, 1);
    private string? _sendEngineTemplate;

    /// <summary>
    /// A new Send Engine database with every migration applied: a copy of one database migrated once for the run, so a
    /// test's engine finds nothing to migrate on start (a file copy instead of every migration again). The schema is
    /// the one a fresh database gets; nothing else is in it.
    /// </summary>
    public async Task<string> CreateSendEngineDatabaseAsync()
    {
        await _templateLock.WaitAsync();
        try
        {
            if (_sendEngineTemplate is null)
            {
                var template = await Postgres.CreateDatabaseAsync("se_template");
                // Unpooled: a copy needs the template free of connections.
                var unpooled = new NpgsqlConnectionStringBuilder(template) { Pooling = false }.ConnectionString;
                var options = new DbContextOptionsBuilder<SendEngineDbContext>().UseNpgsql(unpooled).UseSnakeCaseNamingConvention().Options;
                await using (var db = new SendEngineDbContext(options))
                {
                    await db.Database.MigrateAsync();
                }
                _sendEngineTemplate = new NpgsqlConnectionStringBuilder(template).Database;
            }
        }
        finally
        {
            _templateLock.Release();
        }
        return await Postgres.CreateDatabaseAsync("se", _sendEngineTemplate);
    }

    public async ValueTask InitializeAsync()
    {
        // Independent start-ups side by side: PostgreSQL and maildev; then the Send Engine template migrates while
        // Member Center starts (and migrates its own database).
        await Task.WhenAll(Postgres.InitializeAsync().AsTask(), Mail.InitializeAsync().AsTask());
        MemberCenterConnectionString = await Postgres.CreateDatabaseAsync("mc");
        var sendEngineDatabase = Task.Run(CreateSendEngineDatabaseAsync);

        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Get();
            MemberCenterUrl = $"http://127.0.0.1:{port}";
            MemberCenter = new MemberCenterFactory(new Dictionary<string, string?>
            {
                ["ConnectionStrings:MemberCenter"] = MemberCenterConnectionString,
                ["Auth:Issuer"] = MemberCenterUrl + "/",
                ["Auth:RequireHttps"] = "false",
                ["Bootstrap:AdminClientId"] = AdminClientId,
                ["Bootstrap:AdminClientSecret"] = AdminClientSecret,
                ["Bootstrap:SendEngineClientId"] = SendEngineClientId,
                ["Bootstrap:SendEngineClientSecret"] = SendEngineClientSecret,
                ["PublicUrls:MemberCenter"] = MemberCenterUrl,
                ["Smtp:Host"] = Mail.SmtpHost,
                ["Smtp:Port"] = Mail.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Database:ApplyMigrationsOnStartup"] = "true",
                ["Outbox:PollInterval"] = "00:00:00.500",
                ["Console:ClientSecret"] = ConsoleClientSecret,
                ["Console:PublicUrl"] = ConsoleUrl,
            });
            MemberCenter.UseKestrel(port);
            try
            {
                MemberCenter.StartServer();
                break;
            }
            catch (IOException) when (attempt < 3)
            {
                await MemberCenter.DisposeAsync();
            }
        }
        _mc = new HttpClient { BaseAddress = new Uri(MemberCenterUrl + "/") };
        SendEngineConnectionString = await sendEngineDatabase;
        SendEngine = CreateSendEngine(SendEngineConnectionString);
        _ = SendEngine.Server; // start it
    }

    /// <summary>Settings of a Send Engine pointed at this stack; <paramref name="overrides"/> win.</summary>
    public Dictionary<string, string?> SendEngineSettings(string connectionString, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:SendEngine"] = connectionString,
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Auth:RequireHttpsMetadata"] = "false",
            ["MemberCenter:BaseUrl"] = MemberCenterUrl,
            ["MemberCenter:ClientId"] = SendEngineClientId,
            ["MemberCenter:ClientSecret"] = SendEngineClientSecret,
            ["Smtp:Host"] = Mail.SmtpHost,
            ["Smtp:Port"] = Mail.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Smtp:FromAddress"] = "news@sender.example",
            ["Smtp:FromName"] = "Test Sender",
            // Mail from sender.example (never verified) goes out: SenderDomainDkimTests turns this off.
            ["SenderDomains:AllowUnverified"] = "true",
            ["Database:ApplyMigrationsOnStartup"] = "true",
            ["SendJobs:PollInterval"] = "00:00:00.200",
            ["SendJobs:RetryBaseDelay"] = "00:00:00.200",
            ["SendJobs:BatchSize"] = "50",
            ["Delivery:Concurrency"] = "4",
            ["Hangfire:SchedulePollingInterval"] = "00:00:00.500",
            ["Hangfire:DashboardUsername"] = "ops",
            ["Hangfire:DashboardPassword"] = "ops-secret-123",
            // Most tests never call the webhook; those that do set Signature or Token (TencentSesTests, EventSafetyTests).
            ["TencentSes:Webhook:AllowUnauthenticated"] = "true",
            ["Management:Username"] = ManagementUsername,
            ["Management:Password"] = ManagementPassword,
        };
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }
        return settings;
    }

    public SendEngineFactory CreateSendEngine(string connectionString, IReadOnlyDictionary<string, string?>? overrides = null) =>
        new(SendEngineSettings(connectionString, overrides));

    /// <summary>
    /// A Send Engine of its own on a new database: <paramref name="settings"/> (a test class's tuning) and then
    /// <paramref name="overrides"/> (one test's) over the usual settings. Its server is built before it is returned, so
    /// its background services already run.
    /// </summary>
    public async Task<(SendEngineFactory Engine, string Db)> StartSendEngineAsync(
        IReadOnlyDictionary<string, string?> settings, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var db = await CreateSendEngineDatabaseAsync();
        var merged = new Dictionary<string, string?>(settings);
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            merged[k] = v;
        }
        var engine = CreateSendEngine(db, merged);
        _ = engine.Server;
        return (engine, db);
    }

    /// <summary>A client of <paramref name="engine"/> with a send token of <paramref name="tenant"/>.</summary>
    public async Task<HttpClient> SendEngineClientAsync(SendEngineFactory engine, TestTenant tenant, string scope = Scopes.SendWrite + " " + Scopes.SendRead)
    {
        var client = engine.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await SendTokenAsync(tenant, scope));
        return client;
    }

    /// <summary>A client of the shared Send Engine.</summary>
    public HttpClient SendEngineClient(string? bearer = null)
    {
        var client = SendEngine.CreateClient();
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
        return client;
    }

    public async Task<string> TokenAsync(string clientId, string secret, string? scope = null)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }
        using var response = await _mc.PostAsync("oauth/token", new FormUrlEncodedContent(form));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"token request for {clientId} answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    /// <summary>An application and an API key (X-Pigeon-Api-Key) for the tenant, through Member Center's admin API.</summary>
    public async Task<string> ApiKeyAsync(TestTenant tenant)
    {
        using var admin = MemberCenterAdminClient(await TokenAsync(AdminClientId, AdminClientSecret));
        var app = await PostAsync<ApplicationResponse>(admin, $"admin/tenants/{tenant.TenantId}/applications", new CreateApplicationRequest("shop"));
        var key = await PostAsync<ApiKeySecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/applications/{app.ApplicationId}/keys",
            new CreateApiKeyRequest("tests"));
        return key.ApiKey;
    }

    public Task<string> SendTokenAsync(TestTenant t, string scope = Scopes.SendWrite + " " + Scopes.SendRead) =>
        TokenAsync(t.SendClientId, t.SendClientSecret, scope);

    /// <summary>A tenant with one list and both kinds of client, through Member Center's admin API.</summary>
    public async Task<TestTenant> CreateTenantAsync(string name = "Test tenant")
    {
        using var admin = new HttpClient { BaseAddress = _mc.BaseAddress };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(AdminClientId, AdminClientSecret));
        var tenant = await PostAsync<TenantResponse>(admin, "admin/tenants", new CreateTenantRequest(name));
        var list = await PostAsync<MailingListResponse>(admin, $"admin/tenants/{tenant.TenantId}/lists", new CreateListRequest("Weekly"));
        var send = await PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.SendApi, "sender"));
        var site = await PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.TenantApi, "site"));
        return new TestTenant(tenant.TenantId, list.ListId, send.ClientId, send.ClientSecret, site.ClientId, site.ClientSecret);
    }

    /// <summary>A tenant whose list has <paramref name="count"/> confirmed subscribers, {prefix}{n}@ a domain of its own.</summary>
    public async Task<(TestTenant Tenant, List<string> Emails)> CreateTenantWithSubscribersAsync(int count, string prefix)
    {
        var tenant = await CreateTenantAsync();
        var domain = UniqueDomain();
        var emails = Enumerable.Range(1, count).Select(i => $"{prefix}{i}@{domain}").ToList();
        await SubscribeAsync(tenant, emails);
        return (tenant, emails);
    }

    /// <summary>Subscribes and confirms each address (double opt-in through the real API), with optional preferences.</summary>
    public async Task SubscribeAsync(TestTenant t, IEnumerable<string> emails, Func<string, Dictionary<string, JsonElement>?>? preferences = null)
    {
        using var site = new HttpClient { BaseAddress = _mc.BaseAddress };
        site.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            await TokenAsync(t.TenantClientId, t.TenantClientSecret, Scopes.SubscriptionsWrite + " " + Scopes.SubscriptionsRead));
        await Parallel.ForEachAsync(emails, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (email, ct) =>
        {
            var subscribed = await PostAsync<SubscribeResponse>(site, "newsletter/subscribe", new SubscribeRequest(t.ListId, email, preferences?.Invoke(email)));
            using var confirm = new HttpRequestMessage(HttpMethod.Get, "newsletter/confirm?token=" + Uri.EscapeDataString(subscribed.ConfirmToken!));
            confirm.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var response = await site.SendAsync(confirm, ct);
            Assert.True(response.IsSuccessStatusCode, $"confirm {email}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        });
    }

    /// <summary>Unsubscribes through the end-user API (a token, then POST /newsletter/unsubscribe).</summary>
    public async Task UnsubscribeAsync(TestTenant t, string email)
    {
        using var site = new HttpClient { BaseAddress = _mc.BaseAddress };
        site.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            await TokenAsync(t.TenantClientId, t.TenantClientSecret, Scopes.SubscriptionsWrite));
        var token = await PostAsync<UnsubscribeTokenResponse>(site, "newsletter/unsubscribe-token", new UnsubscribeTokenRequest(t.ListId, email));
        await PostAsync<UnsubscribeResponse>(site, "newsletter/unsubscribe", new UnsubscribeRequest(token.UnsubscribeToken));
    }

    /// <summary>Sets (null: clears) the tenant's branding postal address in Member Center, the footer of its bulk mail.</summary>
    public async Task SetPostalAddressAsync(TestTenant t, string? postalAddress)
    {
        using var site = MemberCenterAdminClient(await TokenAsync(t.TenantClientId, t.TenantClientSecret));
        using var response = await site.PutAsJsonAsync("api/branding", new BrandingRequest(null, null, null, null, null, postalAddress, null), Json);
        Assert.True(response.IsSuccessStatusCode, $"PUT api/branding answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>Sets the tenant's branding (footer text and postal address) and its list's default language in Member Center.</summary>
    public async Task SetBrandedFooterAsync(TestTenant t, string? footerText, string? postalAddress, string listDefaultLanguage)
    {
        using var site = MemberCenterAdminClient(await TokenAsync(t.TenantClientId, t.TenantClientSecret));
        using var branding = await site.PutAsJsonAsync("api/branding", new BrandingRequest(null, null, null, null, footerText, postalAddress, null), Json);
        Assert.True(branding.IsSuccessStatusCode, $"PUT api/branding answered {(int)branding.StatusCode}: {await branding.Content.ReadAsStringAsync()}");
        using var fields = await site.PutAsJsonAsync($"api/lists/{t.ListId}/preference-fields", new PreferenceFieldsRequest(listDefaultLanguage, []), Json);
        Assert.True(fields.IsSuccessStatusCode, $"PUT preference-fields answered {(int)fields.StatusCode}: {await fields.Content.ReadAsStringAsync()}");
    }

    public HttpClient MemberCenterAdminClient(string token)
    {
        var client = new HttpClient { BaseAddress = _mc.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public static async Task<T> PostAsync<T>(HttpClient client, string url, object body)
    {
        using var response = await client.PostAsJsonAsync(url, body, Json);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {url} answered {(int)response.StatusCode}: {text}");
        return JsonSerializer.Deserialize<T>(text, Json)!;
    }

    /// <summary>
    /// Another tenant's resource does not exist for <paramref name="client"/>: every request answers 404 problem+json
    /// (a new message per request, since a sent HttpRequestMessage cannot be sent again).
    /// </summary>
    public static async Task AssertAllNotFoundAsync(HttpClient client, params Func<HttpRequestMessage>[] requests)
    {
        foreach (var request in requests)
        {
            using var message = request();
            using var response = await client.SendAsync(message);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{message.Method} {message.RequestUri}: {(int)response.StatusCode}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    public static async Task<T> ReadAsync<T>(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        return JsonSerializer.Deserialize<T>(text, Json)!;
    }

    /// <summary>Polls GET /api/send-jobs/{id} until <paramref name="done"/> holds (generous timeout, no timing assertions).</summary>
    public static async Task<SendJobResponse> WaitForJobAsync(HttpClient se, string id, Func<SendJobResponse, bool> done, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(90);
        var sw = Stopwatch.StartNew();
        SendJobResponse? last = null;
        while (sw.Elapsed < limit)
        {
            using var response = await se.GetAsync($"api/send-jobs/{id}");
            if (response.IsSuccessStatusCode)
            {
                last = JsonSerializer.Deserialize<SendJobResponse>(await response.Content.ReadAsStringAsync(), Json)!;
                if (done(last))
                {
                    return last;
                }
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"send job {id} did not reach the expected state within {limit}; last: {last}\nRecent service warnings:\n{ServiceLogs.Dump()}");
    }

    /// <summary>
    /// Waits until the job has been seen paused with <paramref name="pauses"/> different resume_at values: the first
    /// pause and then retries that each found the outage still there and paused the job again.
    /// </summary>
    public static async Task WaitForOutagePausesAsync(HttpClient se, string id, int pauses, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(90);
        var seen = new HashSet<DateTimeOffset>();
        var sw = Stopwatch.StartNew();
        while (seen.Count < pauses)
        {
            Assert.True(sw.Elapsed < limit, $"send job {id}: {seen.Count} of {pauses} pauses within {limit}\nRecent service warnings:\n{ServiceLogs.Dump()}");
            var job = JsonSerializer.Deserialize<SendJobResponse>(await se.GetStringAsync($"api/send-jobs/{id}"), Json)!;
            Assert.NotEqual(SendJobStatuses.Failed, job.Status);
            if (job is { Status: SendJobStatuses.Paused, ResumeAt: { } at })
            {
                seen.Add(at);
            }
            await Task.Delay(100);
        }
    }

    public static string UniqueDomain() => $"t{Guid.NewGuid():N}".Substring(0, 12) + ".example";

    public async ValueTask DisposeAsync()
    {
        _mc?.Dispose();
        if (SendEngine is not null)
        {
            await SendEngine.DisposeAsync();
        }
        if (MemberCenter is not null)
        {
            await MemberCenter.DisposeAsync();
        }
        await Mail.DisposeAsync();
        await Postgres.DisposeAsync();
    }

    private static string Secret() => Convert.ToHexString(RandomNumberGenerator.GetBytes(20));

    private static JsonSerializerOptions CreateJson()
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(json);
        return json;
    }
}
