using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace SendEngine.Tests;

/// <summary>The real Member Center, configured through settings (no environment variables: several hosts share the process).</summary>
public sealed class MemberCenterFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<MemberCenter.Program>
{
    private const string HostName = "member-center";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
        builder.ConfigureServices(s => s.AddSingleton<ILogEventSink>(new ServiceLogs(HostName)));
    }
}

/// <param name="services">Test-only service changes (e.g. the webhook gateway's self client on the TestServer).</param>
public sealed class SendEngineFactory(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection>? services = null)
    : WebApplicationFactory<SendEngine.Program>
{
    private const string HostName = "send-engine";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
        builder.ConfigureServices(s => s.AddSingleton<ILogEventSink>(new ServiceLogs(HostName)));
        if (services is not null)
        {
            builder.ConfigureTestServices(services);
        }
        if (services is not null)
        {
            builder.ConfigureTestServices(services);
        }
    }
}
