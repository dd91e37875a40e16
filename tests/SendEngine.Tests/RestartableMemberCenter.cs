using System.Net.Http.Headers;
using System.Text.Json;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// A second real Member Center, in-process on a Kestrel port of its own, that a test can stop and start again: while
/// stopped its port refuses connections, as a Member Center that is down would (not a proxy answering 503). It runs
/// against the stack's Member Center database by default (the same tenants, lists, clients and signing keys), so a
/// Send Engine pointed at <see cref="Url"/> (<see cref="SendEngineSettings"/>) validates its tokens with the JWKS it
/// serves and reads its internal API. The issuer (<c>{Url}/</c>) and the port stay the same across restarts.
/// </summary>
public sealed class RestartableMemberCenter : IAsyncDisposable
{
    private readonly Dictionary<string, string?> _settings;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private MemberCenterFactory? _host;

    private RestartableMemberCenter(int port, Dictionary<string, string?> settings)
    {
        Port = port;
        _settings = settings;
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{Port}</c>, also its issuer (with a trailing slash).</summary>
    public string Url => $"http://127.0.0.1:{Port}";

    public bool IsRunning => _host is not null;

    /// <summary>
    /// Starts one on a free port, against <paramref name="connectionString"/> (the stack's Member Center database when
    /// null; a fresh database is migrated and bootstrapped with the stack's admin and Send Engine clients).
    /// </summary>
    /// <param name="overrides">Settings that win over the defaults (e.g. <c>SendEngine:BaseUrl</c>).</param>
    public static async Task<RestartableMemberCenter> StartAsync(StackFixture stack, string? connectionString = null, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Get();
            var url = $"http://127.0.0.1:{port}";
            var mc = new RestartableMemberCenter(port, new Dictionary<string, string?>
            {
                ["ConnectionStrings:MemberCenter"] = connectionString ?? stack.MemberCenterConnectionString,
                ["Auth:Issuer"] = url + "/",
                ["Auth:RequireHttps"] = "false",
                ["Bootstrap:AdminClientId"] = stack.AdminClientId,
                ["Bootstrap:AdminClientSecret"] = stack.AdminClientSecret,
                ["Bootstrap:SendEngineClientId"] = stack.SendEngineClientId,
                ["Bootstrap:SendEngineClientSecret"] = stack.SendEngineClientSecret,
                ["PublicUrls:MemberCenter"] = url,
                ["Smtp:Host"] = stack.Mail.SmtpHost,
                ["Smtp:Port"] = stack.Mail.SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Database:ApplyMigrationsOnStartup"] = "true",
                ["Outbox:PollInterval"] = "00:00:00.500",
            });
            foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
            {
                mc._settings[k] = v;
            }
            try
            {
                await mc.StartAsync();
                return mc;
            }
            catch (IOException) when (attempt < 3)
            {
                // The free port was taken meanwhile: try another.
            }
        }
    }

    /// <summary>Settings for a Send Engine that uses this Member Center for tokens and the internal API.</summary>
    public Dictionary<string, string?> SendEngineSettings(StackFixture stack, string connectionString, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var settings = stack.SendEngineSettings(connectionString, overrides);
        settings["Auth:Issuer"] = Url + "/";
        settings["MemberCenter:BaseUrl"] = Url;
        foreach (var (k, v) in overrides ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }
        return settings;
    }

    /// <summary>Starts it (again) on the same port and issuer; returns once it answers.</summary>
    public async Task StartAsync()
    {
        await _lock.WaitAsync();
        try
        {
            if (_host is not null)
            {
                return;
            }
            var host = new MemberCenterFactory(_settings);
            host.UseKestrel(Port);
            try
            {
                host.StartServer();
            }
            catch
            {
                await host.DisposeAsync();
                throw;
            }
            _host = host;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Stops the host (graceful shutdown); from then on its port refuses connections until <see cref="StartAsync"/>.</summary>
    public async Task StopAsync()
    {
        await _lock.WaitAsync();
        try
        {
            if (_host is { } host)
            {
                _host = null;
                await host.DisposeAsync();
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>A client_credentials token from this Member Center (issuer <c>{Url}/</c>).</summary>
    public async Task<string> TokenAsync(string clientId, string secret, string? scope = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(Url + "/") };
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }
        using var response = await http.PostAsync("oauth/token", new FormUrlEncodedContent(form));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"token request for {clientId} answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    public Task<string> SendTokenAsync(TestTenant t) =>
        TokenAsync(t.SendClientId, t.SendClientSecret, Newsletter.Contracts.Scopes.SendWrite + " " + Newsletter.Contracts.Scopes.SendRead);

    /// <summary>A client of this Member Center with a bearer token.</summary>
    public HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(Url + "/") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _lock.Dispose();
    }
}
