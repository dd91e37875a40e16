using System.Net.Http.Headers;
using Microsoft.Playwright;
using Newsletter.Contracts;
using Newsletter.TestSupport;

namespace Console.Tests;

/// <summary>
/// PostgreSQL, Member Center and console instances on <c>localhost</c> (WebAuthn refuses an IP address as the relying
/// party id, so the passkey test cannot use the 127.0.0.1 hosts of <see cref="ConsoleFixture"/>), and chromium. Console
/// instances are started and stopped by the tests on one console database: restarts and two instances.
/// </summary>
public sealed class SessionStackFixture : IAsyncLifetime
{
    private const string AdminClientId = "session-admin";
    private const string AdminClientSecret = "session-admin-secret-0123456789";

    private readonly PostgresServer _postgres = new();
    private ServiceHost<MemberCenter.Program>? _memberCenter;
    private IPlaywright? _playwright;

    public string MemberCenterUrl { get; private set; } = "";
    /// <summary>The console's public URL (its redirect URIs); the first instance listens on it.</summary>
    public string ConsoleUrl { get; private set; } = "";
    public int ConsolePort { get; private set; }
    public string ConsoleDatabase { get; private set; } = "";
    public string TenantId { get; private set; } = "";
    public IBrowser Browser { get; private set; } = null!;
    public IServiceProvider MemberCenterServices => _memberCenter!.Services;

    public async ValueTask InitializeAsync()
    {
        await _postgres.InitializeAsync();
        var mcDb = await _postgres.CreateDatabaseAsync("sessions_mc");
        ConsoleDatabase = await _postgres.CreateDatabaseAsync("sessions_console");
        var mcPort = FreePort.Get();
        ConsolePort = FreePort.Get();
        MemberCenterUrl = $"http://localhost:{mcPort}";
        ConsoleUrl = $"http://localhost:{ConsolePort}";
        _memberCenter = new(new Dictionary<string, string?>
        {
            ["ConnectionStrings:MemberCenter"] = mcDb,
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Auth:RequireHttps"] = "false",
            ["Bootstrap:AdminClientId"] = AdminClientId,
            ["Bootstrap:AdminClientSecret"] = AdminClientSecret,
            ["Console:ClientSecret"] = ConsoleFixture.ConsoleClientSecret,
            ["Console:PublicUrl"] = ConsoleUrl,
            ["PublicUrls:MemberCenter"] = MemberCenterUrl,
            // No mail is read here: the outbox may fail to deliver.
            ["Smtp:Host"] = "127.0.0.1",
            ["Smtp:Port"] = FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Database:ApplyMigrationsOnStartup"] = "true",
        });
        _memberCenter.UseKestrel(mcPort);
        _memberCenter.StartServer();

        using var admin = new HttpClient { BaseAddress = new Uri(MemberCenterUrl + "/") };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync());
        TenantId = (await ConsoleFixture.PostAsync<TenantResponse>(admin, "admin/tenants", new CreateTenantRequest("Session tenant"))).TenantId;

        _playwright = await Playwright.CreateAsync();
        Browser = await ConsoleTesting.LaunchChromiumAsync(_playwright);
    }

    /// <summary>A console instance on <paramref name="port"/> with the shared console database (dispose to stop it).</summary>
    public ServiceHost<NewsletterConsole.Program> StartConsole(int port)
    {
        var console = new ServiceHost<NewsletterConsole.Program>(new Dictionary<string, string?>
        {
            ["Auth:Issuer"] = MemberCenterUrl + "/",
            ["Console:PublicUrl"] = ConsoleUrl,
            ["Console:MemberCenterUrl"] = MemberCenterUrl,
            // Not started: the pages these tests open do not call Send Engine.
            ["Console:SendEngineUrl"] = "http://localhost:" + FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Console:ClientSecret"] = ConsoleFixture.ConsoleClientSecret,
            ["ConnectionStrings:Console"] = ConsoleDatabase,
            ["Database:ApplyMigrationsOnStartup"] = "true",
        });
        console.UseKestrel(port);
        console.StartServer();
        return console;
    }

    /// <summary>A confirmed person with a role in the tenant.</summary>
    public async Task<Person> CreatePersonAsync(string email, string role)
    {
        using var admin = new HttpClient { BaseAddress = new Uri(MemberCenterUrl + "/") };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync());
        var person = new Person(email, ConsoleFixture.Password);
        var userId = await ConsoleTesting.CreateConfirmedPersonAsync(admin, _memberCenter!.Services, person, email.Split('@')[0]);
        await ConsoleFixture.PostAsync<MemberResponse>(admin, $"admin/tenants/{TenantId}/members", new AdminAddMemberRequest(userId, null, role));
        return person;
    }

    /// <summary>Opens the console at <paramref name="consoleUrl"/>, signs in with the password and waits for the console.</summary>
    public Task SignInAsync(IPage page, Person person, string consoleUrl) => ConsoleTesting.SignInAsync(page, person, MemberCenterUrl, consoleUrl);

    public static Task WaitForConsoleAsync(IPage page, string consoleUrl) => ConsoleTesting.WaitForConsoleAsync(page, consoleUrl);

    private Task<string> TokenAsync() => ConsoleTesting.TokenAsync(MemberCenterUrl, AdminClientId, AdminClientSecret);

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        _playwright?.Dispose();
        if (_memberCenter is not null)
        {
            await _memberCenter.DisposeAsync();
        }
        await _postgres.DisposeAsync();
    }
}
