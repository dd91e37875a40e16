using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace SendEngine.Tests;

/// <summary>The real Member Center, configured through settings (no environment variables: several hosts share the process).</summary>
public sealed class MemberCenterFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<MemberCenter.Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }
}

public sealed class SendEngineFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<SendEngine.Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
    }
}
