using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.TestSupport;
using Serilog.Core;
using Serilog.Events;

namespace MemberCenter.Tests;

/// <summary>The export and erasure routes name the address in their path; the request log must not.</summary>
public sealed class PersonalDataLogTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _mc = new(postgres, mail);
    private readonly ConcurrentQueue<string> _logs = new();

    public async ValueTask InitializeAsync()
    {
        _mc.ExtraServices = s => s.AddSingleton<ILogEventSink>(new Sink(_logs));
        // No Send Engine: the export answers 503 and the erasure stays queued, both are still logged.
        _mc.Settings["SendEngine:BaseUrl"] = $"http://127.0.0.1:{FreePort.Get()}";
        await _mc.InitializeAsync();
    }

    public async ValueTask DisposeAsync() => await ((IAsyncDisposable)_mc).DisposeAsync();

    [Fact]
    public async Task Export_and_erasure_requests_are_logged_without_the_address()
    {
        var tenant = await _mc.CreateTenantAsync();
        var email = $"private.person-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email);
        using var api = tenant.Api();
        using (var export = await api.GetAsync($"api/subscribers/{Uri.EscapeDataString(email)}/export"))
        {
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, export.StatusCode);
        }
        using (var erased = await api.DeleteAsync($"api/subscribers/{Uri.EscapeDataString(email)}"))
        {
            Assert.Equal(System.Net.HttpStatusCode.Accepted, erased.StatusCode);
        }
        var text = string.Join('\n', _logs);
        Assert.Contains("/api/subscribers/{email}", text, StringComparison.Ordinal); // the request log did run
        Assert.Null(_logs.FirstOrDefault(l => l.Contains("private.person", StringComparison.OrdinalIgnoreCase)));
    }

    private sealed class Sink(ConcurrentQueue<string> events) : ILogEventSink
    {
        public void Emit(LogEvent logEvent) => events.Enqueue(string.Create(CultureInfo.InvariantCulture,
            $"{logEvent.RenderMessage(CultureInfo.InvariantCulture)} {string.Join(' ', logEvent.Properties.Select(p => $"{p.Key}={p.Value}"))} {logEvent.Exception}"));
    }
}
