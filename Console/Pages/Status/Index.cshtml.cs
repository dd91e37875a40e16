using Microsoft.Extensions.Options;
using NewsletterConsole.Api;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Pages.Status;

public sealed record ServiceHealth(string Name, bool Healthy, string Detail);

/// <summary>Both services' /health/ready, probed by the console's server.</summary>
public sealed class IndexModel(HealthProbe probe, IOptions<ConsoleOptions> options) : ConsolePage
{
    public IReadOnlyList<ServiceHealth> Services { get; private set; } = [];
    public string HangfireUrl { get; private set; } = "";

    public async Task OnGetAsync(CancellationToken ct)
    {
        var o = options.Value;
        HangfireUrl = (o.SendEnginePublicUrl ?? o.SendEngineUrl).TrimEnd('/') + "/hangfire";
        var mc = probe.ProbeAsync(o.MemberCenterUrl, ct);
        var se = probe.ProbeAsync(o.SendEngineUrl, ct);
        Services =
        [
            ToHealth("Member Center", await mc),
            ToHealth("Send Engine", await se),
        ];
    }

    private static ServiceHealth ToHealth(string name, (int? Status, string Body) probe) =>
        new(name, probe.Status == 200, probe.Status is { } s ? $"{s} {Truncate(probe.Body)}" : probe.Body);

    private static string Truncate(string s) => s.Length > 200 ? s[..200] : s;
}
