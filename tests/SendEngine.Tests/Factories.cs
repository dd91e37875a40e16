using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
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

public sealed class SendEngineFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<SendEngine.Program>
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
    }
}
