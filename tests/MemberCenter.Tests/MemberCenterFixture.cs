using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MemberCenter.Data;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>
/// The real Member Center on a real Kestrel port, with its own PostgreSQL database and the shared maildev.
/// Real HTTP, so browsers and JOSE libraries see exactly what a tenant would.
/// </summary>
public sealed class MemberCenterFixture(PostgresServer postgres, MailDevServer mail) : WebApplicationFactory<Program>, IAsyncLifetime
{
    public const string AdminClientId = "test-admin";
    public const string AdminClientSecret = "test-admin-secret-0123456789";
    public const string SendEngineClientId = "test-send-engine";
    public const string SendEngineClientSecret = "test-send-engine-secret-0123456789";
    public const string ConsoleClientId = "console";
    public const string ConsoleClientSecret = "test-console-secret-0123456789";
    /// <summary>Nothing listens there: tests read the code from the redirect's Location.</summary>
    public const string ConsoleUrl = "http://127.0.0.1:9/console";

    /// <summary>The basic credential of /swagger on the public listener (Management__Username/Password).</summary>
    public const string ManagementUsername = "operator";
    public const string ManagementPassword = "management-secret-0123";

    public static AuthenticationHeaderValue ManagementAuthorization { get; } =
        new("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{ManagementUsername}:{ManagementPassword}")));

    public static readonly JsonSerializerOptions Json = CreateJson();

    private string _connectionString = "";

    public int Port { get; } = FreePort.Get();
    public Uri BaseUri => new($"http://127.0.0.1:{Port}/");
    public string Issuer => BaseUri.ToString();
    public MailDevServer Mail => mail;
    public string ConnectionString => _connectionString;

    /// <summary>Extra settings a derived test can set before start (e.g. an unreachable SMTP port).</summary>
    public Dictionary<string, string?> Settings { get; } = [];

    /// <summary>Extra services a test can register before start (e.g. a Serilog sink that keeps what is logged).</summary>
    public Action<IServiceCollection>? ExtraServices { get; set; }

    public async ValueTask InitializeAsync()
    {
        _connectionString = await postgres.CreateDatabaseAsync("mc");
        UseKestrel(Port);
        StartServer();
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:MemberCenter"] = _connectionString,
            ["Database:ApplyMigrationsOnStartup"] = "true",
            ["Auth:Issuer"] = Issuer,
            ["Auth:RequireHttps"] = "false",
            ["PublicUrls:MemberCenter"] = BaseUri.ToString().TrimEnd('/'),
            ["Bootstrap:AdminClientId"] = AdminClientId,
            ["Bootstrap:AdminClientSecret"] = AdminClientSecret,
            ["Bootstrap:SendEngineClientId"] = SendEngineClientId,
            ["Bootstrap:SendEngineClientSecret"] = SendEngineClientSecret,
            ["Smtp:Host"] = mail.SmtpHost,
            ["Smtp:Port"] = mail.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Outbox:PollInterval"] = "00:00:00.500",
            ["Privacy:AddressHashKey"] = "test-address-hash-key-0123456789abcdef",
            ["Auth:SigningKeys:PrePublish"] = "00:00:02",
            ["Auth:SigningKeys:RefreshInterval"] = "00:00:01",
            ["Management:Username"] = ManagementUsername,
            ["Management:Password"] = ManagementPassword,
            ["Console:ClientSecret"] = ConsoleClientSecret,
            ["Console:PublicUrl"] = ConsoleUrl,
        };
        foreach (var (k, v) in Settings)
        {
            settings[k] = v;
        }
        foreach (var (k, v) in settings)
        {
            builder.UseSetting(k, v);
        }
        if (ExtraServices is { } services)
        {
            builder.ConfigureServices(services);
        }
    }

    public HttpClient Http(string? bearer = null)
    {
        var http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(30) };
        if (bearer is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
        return http;
    }

    public async Task<HttpResponseMessage> RequestTokenAsync(string clientId, string secret, string? scope = null, string grantType = "client_credentials")
    {
        using var http = Http();
        var form = new Dictionary<string, string> { ["grant_type"] = grantType, ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }
        return await http.PostAsync("oauth/token", new FormUrlEncodedContent(form));
    }

    public async Task<string> TokenAsync(string clientId, string secret, string? scope = null)
    {
        using var response = await RequestTokenAsync(clientId, secret, scope);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"token request for {clientId} failed: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    public Task<string> AdminTokenAsync() => TokenAsync(AdminClientId, AdminClientSecret);

    /// <summary>A new tenant with one list and a client of each usage, made through the admin API.</summary>
    public async Task<TestTenant> CreateTenantAsync(string name = "Tenant")
    {
        using var admin = Http(await AdminTokenAsync());
        var tenant = await ReadAsync<TenantResponse>(await admin.PostAsJsonAsync("admin/tenants", new CreateTenantRequest(name), Json));
        var list = await ReadAsync<MailingListResponse>(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/lists", new CreateListRequest("Weekly"), Json));
        var tenantClient = await ReadAsync<ApiClientSecretResponse>(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.TenantApi, "site"), Json));
        var sendClient = await ReadAsync<ApiClientSecretResponse>(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/clients", new CreateClientRequest(ClientUsages.SendApi, "sender"), Json));
        var token = await TokenAsync(tenantClient.ClientId, tenantClient.ClientSecret);
        return new TestTenant(this, tenant.TenantId, list.ListId, tenantClient, sendClient, token);
    }

    public static async Task<T> ReadAsync<T>(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {response.RequestMessage?.RequestUri}: {body}");
        return JsonSerializer.Deserialize<T>(body, Json)!;
    }

    public async Task<T> WithDbAsync<T>(Func<MemberCenterDbContext, Task<T>> query)
    {
        await using var scope = Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>());
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await base.DisposeAsync();

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(o);
        return o;
    }
}

public sealed record TestTenant(MemberCenterFixture Fixture, string TenantId, string ListId, ApiClientSecretResponse TenantClient, ApiClientSecretResponse SendClient, string TenantToken)
{
    public HttpClient Api() => Fixture.Http(TenantToken);

    public async Task<SubscribeResponse> SubscribeAsync(string email, object? preferences = null)
    {
        using var api = Api();
        return await MemberCenterFixture.ReadAsync<SubscribeResponse>(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = ListId, email, preferences }));
    }

    public async Task ConfirmAsync(string confirmToken)
    {
        using var http = Fixture.Http();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"newsletter/confirm?token={confirmToken}");
        request.Headers.Accept.ParseAdd("application/json");
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    public async Task<string> UnsubscribeTokenAsync(string email)
    {
        using var api = Api();
        var r = await MemberCenterFixture.ReadAsync<UnsubscribeTokenResponse>(await api.PostAsJsonAsync("newsletter/unsubscribe-token", new { list_id = ListId, email }));
        return r.UnsubscribeToken;
    }
}

/// <summary>The classes that share one Member Center; they run one after another.</summary>
[CollectionDefinition(Name)]
[LongRunning(460)]
public sealed class MemberCenterCollection : ICollectionFixture<MemberCenterFixture>
{
    public const string Name = "MemberCenter";
}

/// <summary>
/// The browser tests' own Member Center (own database, same maildev), so they run beside <see cref="MemberCenterCollection"/>
/// instead of after it: together the two took most of the project's time one after another.
/// </summary>
[CollectionDefinition(Name)]
[LongRunning(390)]
public sealed class MemberCenterBrowserCollection : ICollectionFixture<MemberCenterFixture>
{
    public const string Name = "MemberCenterBrowser";
}
