using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.TestSupport;

namespace Console.Tests;

/// <summary>
/// A tenant seeded through the admin API: a list, a send_api and a tenant_api client, and one send job (its body is
/// secret).
/// </summary>
public sealed record SeededTenant(string TenantId, string Name, string ListId, string SendClientId, string SendClientSecret, string JobId,
    string TenantClientId, string TenantClientSecret);

public sealed record Person(string Email, string Password);

/// <summary>
/// PostgreSQL, maildev, Member Center, Send Engine and the console, each on a Kestrel port of 127.0.0.1 (the browser
/// follows real redirects between the console and Member Center), two tenants, a person of each role, and chromium.
/// </summary>
public sealed class ConsoleFixture : IAsyncLifetime
{
    public const string ConsoleClientSecret = "console-test-secret-0123456789";
    public const string Password = "Correct-horse-battery-9";
    /// <summary>In tenant A's job only: a page that shows it showed the message body.</summary>
    public const string SecretBody = "SECRET-BODY-7f3a";

    public static readonly JsonSerializerOptions Json = CreateJson();

    private readonly PostgresServer _postgres = new();
    private readonly MailDevServer _mail = new();
    private FaultSmtpServer? _relay;
    private ServiceHost<MemberCenter.Program>? _memberCenter;
    private ServiceHost<SendEngine.Program>? _sendEngine;
    private ServiceHost<NewsletterConsole.Program>? _console;
    private IPlaywright? _playwright;
    private readonly Dictionary<string, IBrowserContext> _signedIn = [];
    private readonly SemaphoreSlim _signInLock = new(1, 1);

    public string MemberCenterUrl { get; private set; } = "";
    public string SendEngineUrl { get; private set; } = "";
    public string ConsoleUrl { get; private set; } = "";
    public IBrowser Browser { get; private set; } = null!;
    /// <summary>Where Member Center's mails (invitations, confirmation mails) arrive.</summary>
    public MailDevServer Mail => _mail;
    /// <summary>
    /// Send Engine's relay: a real SMTP server that answers each message after <see cref="RelayDelaySeconds"/>, and
    /// one connection, so a job of a few dozen recipients runs for seconds and its live progress can be watched.
    /// </summary>
    public FaultSmtpServer Relay => _relay!;
    public const string RelayDelaySeconds = "0.25";
    public SeededTenant TenantA { get; private set; } = null!;
    public SeededTenant TenantB { get; private set; } = null!;

    /// <summary>Owner of A and editor of B (the tenant switch).</summary>
    public Person Owner { get; } = new("owner@console.example", Password);
    public Person Admin { get; } = new("admin@console.example", Password);
    public Person Editor { get; } = new("editor@console.example", Password);
    public Person Viewer { get; } = new("viewer@console.example", Password);
    /// <summary>An editor of A who never signs in: the People page changes her role.</summary>
    public Person SecondEditor { get; } = new("editor2@console.example", Password);
    /// <summary>Owner of B only.</summary>
    public Person OwnerOfB { get; } = new("owner-b@console.example", Password);
    /// <summary>A platform operator (Bootstrap:OperatorEmail), member of no tenant.</summary>
    public Person Operator { get; } = new("operator@console.example", Password);

    private const string AdminClientId = "test-admin";
    private const string AdminClientSecret = "test-admin-secret-0123456789";
    private const string SendEngineClientId = "test-send-engine";
    private const string SendEngineClientSecret = "test-send-engine-secret-0123456789";

    public async ValueTask InitializeAsync()
    {
        await _postgres.InitializeAsync();
        await _mail.InitializeAsync();
        _relay = await FaultSmtpServer.StartAsync("--data-delay", RelayDelaySeconds);
        var mcDb = await _postgres.CreateDatabaseAsync("console_mc");
        var seDb = await _postgres.CreateDatabaseAsync("console_se");
        var consoleDb = await _postgres.CreateDatabaseAsync("console_console");
        var mcPort = FreePort.Get();
        var sePort = FreePort.Get();
        var consolePort = FreePort.Get();
        MemberCenterUrl = $"http://127.0.0.1:{mcPort}";
        SendEngineUrl = $"http://127.0.0.1:{sePort}";
        ConsoleUrl = $"http://127.0.0.1:{consolePort}";
        var smtpPort = _mail.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var relayPort = _relay.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        _memberCenter = new(new Dictionary<string, string?>
        {
            ["ConnectionStrings:MemberCenter"] = mcDb,
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Auth:RequireHttps"] = "false",
            ["Bootstrap:AdminClientId"] = AdminClientId,
            ["Bootstrap:AdminClientSecret"] = AdminClientSecret,
            ["Bootstrap:SendEngineClientId"] = SendEngineClientId,
            ["Bootstrap:SendEngineClientSecret"] = SendEngineClientSecret,
            ["Bootstrap:OperatorEmail"] = Operator.Email,
            ["Bootstrap:OperatorPassword"] = Operator.Password,
            ["Console:ClientSecret"] = ConsoleClientSecret,
            ["Console:PublicUrl"] = ConsoleUrl,
            ["PublicUrls:MemberCenter"] = MemberCenterUrl,
            ["SendEngine:BaseUrl"] = SendEngineUrl,
            ["Smtp:Host"] = _mail.SmtpHost,
            ["Smtp:Port"] = smtpPort,
            ["Database:ApplyMigrationsOnStartup"] = "true",
        });
        _memberCenter.UseKestrel(mcPort);
        _memberCenter.StartServer();

        _sendEngine = new(new Dictionary<string, string?>
        {
            ["ConnectionStrings:SendEngine"] = seDb,
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Auth:RequireHttpsMetadata"] = "false",
            ["MemberCenter:BaseUrl"] = MemberCenterUrl,
            ["MemberCenter:ClientId"] = SendEngineClientId,
            ["MemberCenter:ClientSecret"] = SendEngineClientSecret,
            ["Smtp:Host"] = _relay.Host,
            ["Smtp:Port"] = relayPort,
            ["Delivery:Concurrency"] = "1",
            ["Delivery:GroupSize"] = "1",
            ["Smtp:FromAddress"] = "news@sender.example",
            // Mail from sender.example (never verified) goes out (SenderDomains:AllowUnverified; SenderDomainDkimTests turns it off).
            ["SenderDomains:AllowUnverified"] = "true",
            ["Smtp:FromName"] = "Console Test",
            ["Database:ApplyMigrationsOnStartup"] = "true",
            ["SendJobs:PollInterval"] = "00:00:00.200",
            ["Hangfire:SchedulePollingInterval"] = "00:00:00.500",
            ["Hangfire:DashboardUsername"] = "ops",
            ["Hangfire:DashboardPassword"] = "ops-secret-123",
            ["TencentSes:Webhook:AllowUnauthenticated"] = "true",
            // Webhook endpoints made by the tests point at a closed loopback port: attempts fail at once.
            ["Webhooks:AllowPrivateNetworks"] = "true",
            // Provider credentials made by the tests point at the loopback relay (tls none) or a closed loopback port.
            ["ProviderCredentials:AllowPrivateNetworks"] = "true",
            // Bounce mailboxes made by the tests name a loopback server (registered disabled: never read).
            ["BounceMailboxes:AllowPrivateNetworks"] = "true",
            ["ProviderCredentials:ConnectTimeout"] = "00:00:03",
            ["ProviderCredentials:CommandTimeout"] = "00:00:05",
            ["ProviderCredentials:VerifyTimeout"] = "00:00:10",
        });
        _sendEngine.UseKestrel(sePort);
        _sendEngine.StartServer();

        _console = new(new Dictionary<string, string?>
        {
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Console:PublicUrl"] = ConsoleUrl,
            ["Console:MemberCenterUrl"] = MemberCenterUrl,
            ["Console:SendEngineUrl"] = SendEngineUrl,
            ["Console:ClientSecret"] = ConsoleClientSecret,
            ["ConnectionStrings:Console"] = consoleDb,
            ["Database:ApplyMigrationsOnStartup"] = "true",
        });
        _console.UseKestrel(consolePort);
        _console.StartServer();

        await SeedAsync();

        _playwright = await Playwright.CreateAsync();
        Browser = await ConsoleTesting.LaunchChromiumAsync(_playwright);
    }

    private async Task SeedAsync()
    {
        using var admin = new HttpClient { BaseAddress = new Uri(MemberCenterUrl + "/") };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(AdminClientId, AdminClientSecret));
        TenantA = await SeedTenantAsync(admin, "Tenant A");
        TenantB = await SeedTenantAsync(admin, "Tenant B");
        var owner = await CreatePersonAsync(admin, Owner, "Olive Owner");
        await AddMemberAsync(admin, TenantA, owner, Roles.Owner);
        await AddMemberAsync(admin, TenantB, owner, Roles.Editor);
        await AddMemberAsync(admin, TenantA, await CreatePersonAsync(admin, Admin, "Adam Admin"), Roles.Admin);
        await AddMemberAsync(admin, TenantA, await CreatePersonAsync(admin, Editor, "Edith Editor"), Roles.Editor);
        await AddMemberAsync(admin, TenantA, await CreatePersonAsync(admin, Viewer, "Victor Viewer"), Roles.Viewer);
        await AddMemberAsync(admin, TenantA, await CreatePersonAsync(admin, SecondEditor, "Erin Editor"), Roles.Editor);
        await AddMemberAsync(admin, TenantB, await CreatePersonAsync(admin, OwnerOfB, "Bea Owner"), Roles.Owner);
    }

    private async Task<SeededTenant> SeedTenantAsync(HttpClient admin, string name)
    {
        var tenant = await PostAsync<TenantResponse>(admin, "admin/tenants", new CreateTenantRequest(name));
        var list = await PostAsync<MailingListResponse>(admin, $"admin/tenants/{tenant.TenantId}/lists", new CreateListRequest($"{name} weekly"));
        var send = await PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.SendApi, "sender"));
        var tenantApi = await PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.TenantApi, "integration"));
        using var se = new HttpClient { BaseAddress = new Uri(SendEngineUrl + "/") };
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            await TokenAsync(send.ClientId, send.ClientSecret, Scopes.SendWrite + " " + Scopes.SendRead));
        var job = await PostAsync<SendJobResponse>(se, "api/send-jobs", new CreateSendJobRequest(null, list.ListId, $"{name} launch",
            "Hello {{email}}", $"<p>{SecretBody}</p>", SecretBody, DateTimeOffset.UtcNow.AddDays(7).ToString("o")));
        return new SeededTenant(tenant.TenantId, name, list.ListId, send.ClientId, send.ClientSecret, job.Id, tenantApi.ClientId, tenantApi.ClientSecret);
    }

    private Task<string> CreatePersonAsync(HttpClient admin, Person person, string name) =>
        ConsoleTesting.CreateConfirmedPersonAsync(admin, _memberCenter!.Services, person, name);

    private static async Task AddMemberAsync(HttpClient admin, SeededTenant tenant, string userId, string role) =>
        await PostAsync<MemberResponse>(admin, $"admin/tenants/{tenant.TenantId}/members", new AdminAddMemberRequest(userId, null, role));

    public Task<string> TokenAsync(string clientId, string secret, string? scope = null) =>
        ConsoleTesting.TokenAsync(MemberCenterUrl, clientId, secret, scope);

    /// <summary>Member Center's tenant API as the tenant's own integration (tenant_api client) calls it.</summary>
    public async Task<HttpClient> MemberCenterClientAsync(SeededTenant tenant)
    {
        var http = new HttpClient { BaseAddress = new Uri(MemberCenterUrl + "/") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(tenant.TenantClientId, tenant.TenantClientSecret));
        return http;
    }

    /// <summary>Send Engine's tenant API as the tenant's send_api client calls it.</summary>
    public async Task<HttpClient> SendEngineClientAsync(SeededTenant tenant)
    {
        var http = new HttpClient { BaseAddress = new Uri(SendEngineUrl + "/") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            await TokenAsync(tenant.SendClientId, tenant.SendClientSecret, Scopes.SendWrite + " " + Scopes.SendRead));
        return http;
    }

    /// <summary>
    /// A new list of <paramref name="tenant"/> whose <paramref name="csv"/> rows (header <c>email,…</c>) are imported as
    /// confirmed subscribers through Member Center's API; returns when the import has completed.
    /// </summary>
    public async Task<string> ListWithSubscribersAsync(SeededTenant tenant, string name, string csv)
    {
        using var mc = await MemberCenterClientAsync(tenant);
        var list = await PostAsync<MailingListResponse>(mc, "api/lists", new CreateListRequest(name));
        using var content = new StringContent(csv, System.Text.Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv");
        using var response = await mc.PostAsync($"api/lists/{list.ListId}/imports?mode=confirmed&consent_note=test%20seed", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"import: {(int)response.StatusCode} {text}");
        var import = JsonSerializer.Deserialize<SubscriberImportResponse>(text, Json)!;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (import.Status != ImportStatuses.Completed)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the import of {name} did not complete: {import.Status}");
            await Task.Delay(200);
            import = (await mc.GetFromJsonAsync<SubscriberImportResponse>($"api/lists/{list.ListId}/imports/{import.ImportId}", Json))!;
        }
        return list.ListId;
    }

    public static async Task<T> PostAsync<T>(HttpClient client, string url, object body)
    {
        using var response = await client.PostAsJsonAsync(url, body, Json);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {url}: {(int)response.StatusCode} {text}");
        return JsonSerializer.Deserialize<T>(text, Json)!;
    }

    /// <summary>
    /// A browser context in which <paramref name="person"/> signed in through Member Center's login page, once per
    /// person for the whole run (the tests only read, or act on their own objects).
    /// </summary>
    public async Task<IBrowserContext> SignedInAsync(Person person)
    {
        await _signInLock.WaitAsync();
        try
        {
            if (_signedIn.TryGetValue(person.Email, out var existing))
            {
                return existing;
            }
            var context = await Browser.NewContextAsync(new() { BaseURL = ConsoleUrl + "/" });
            context.SetDefaultTimeout(90_000);
            context.SetDefaultNavigationTimeout(90_000);
            var page = await context.NewPageAsync();
            await SignInAsync(page, person);
            await page.CloseAsync();
            _signedIn[person.Email] = context;
            return context;
        }
        finally
        {
            _signInLock.Release();
        }
    }

    /// <summary>Opens the console, lands on Member Center's login page, signs in and returns to the console.</summary>
    public Task SignInAsync(IPage page, Person person) => ConsoleTesting.SignInAsync(page, person, MemberCenterUrl, ConsoleUrl);

    /// <summary>Runs <paramref name="body"/> on a new page of <paramref name="person"/>'s signed-in context, closed afterwards whatever happens.</summary>
    public async Task WithPageAsync(Person person, Func<IPage, Task> body) => await (await SignedInAsync(person)).WithPageAsync(body);

    private static JsonSerializerOptions CreateJson()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(options);
        return options;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var context in _signedIn.Values)
        {
            await context.DisposeAsync();
        }
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        _playwright?.Dispose();
        foreach (var host in new IAsyncDisposable?[] { _console, _sendEngine, _memberCenter })
        {
            if (host is not null)
            {
                await host.DisposeAsync();
            }
        }
        await _mail.DisposeAsync();
        if (_relay is not null)
        {
            await _relay.DisposeAsync();
        }
        await _postgres.DisposeAsync();
        _signInLock.Dispose();
    }
}
