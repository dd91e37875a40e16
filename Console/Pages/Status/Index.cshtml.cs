using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using NewsletterConsole.Api;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Pages.Status;

public sealed record ServiceHealth(string Name, bool Healthy, string Detail);

/// <summary>Both services' /health/ready, probed by the console's server; operators also see Send Engine's GET /admin/status.</summary>
public sealed class IndexModel(HealthProbe probe, SendEngineApi se, IOptions<ConsoleOptions> options) : ConsolePage
{
    /// <summary>Send Engine's GET /admin/status, for platform operators only.</summary>
    public SendEngineStatusResponse? SendEngine { get; private set; }

    public IReadOnlyList<ServiceHealth> Services { get; private set; } = [];
    public string HangfireUrl { get; private set; } = "";

    public async Task OnGetAsync(CancellationToken ct)
    {
        var o = options.Value;
        HangfireUrl = (o.SendEnginePublicUrl ?? o.SendEngineUrl).TrimEnd('/') + "/hangfire";
        var mc = probe.ProbeAsync(o.MemberCenterUrl, ct);
        var seHealth = probe.ProbeAsync(o.SendEngineUrl, ct);
        Services =
        [
            ToHealth("Member Center", await mc),
            ToHealth("Send Engine", await seHealth),
        ];
        if (Can(Newsletter.Contracts.Scopes.PlatformAdmin))
        {
            SendEngine = await se.GetAsync<SendEngineStatusResponse>("admin/status", ct);
        }
    }

    private static ServiceHealth ToHealth(string name, (int? Status, string Body) probe) =>
        new(name, probe.Status == 200, probe.Status is { } s ? $"{s} {Truncate(probe.Body)}" : probe.Body);

    private static string Truncate(string s) => s.Length > 200 ? s[..200] : s;
}
