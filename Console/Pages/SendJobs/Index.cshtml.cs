using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.SendJobs;

/// <summary>GET /api/send-jobs of Send Engine, keyset-paged.</summary>
public sealed class IndexModel(SendEngineApi se) : ConsolePage
{
    public SendJobPage Jobs { get; private set; } = new([], null);

    public async Task OnGetAsync(string? after, CancellationToken ct) =>
        Jobs = await se.GetAsync<SendJobPage>("api/send-jobs?limit=50" + (after is null ? "" : "&after=" + ServiceApi.Escape(after)), ct);
}
