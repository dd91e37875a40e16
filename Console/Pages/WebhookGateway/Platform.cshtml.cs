using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.WebhookGateway;

/// <summary>
/// Send Engine's /admin/webhook-gateway: the platform log, requests no tenant could be attributed to (refused callbacks,
/// events naming no message sent from the platform), live through the console's relay. Platform operators only.
/// </summary>
public sealed class PlatformModel(SendEngineApi se) : ConsolePage
{
    public GatewayEntryPage Entries { get; private set; } = new([], null);
    public string? Verification { get; private set; }
    public string? Before { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? verification, string? before, CancellationToken ct)
    {
        if (!Can(Scopes.PlatformAdmin))
        {
            return NotAllowed();
        }
        Verification = string.IsNullOrWhiteSpace(verification) ? null : verification;
        Before = string.IsNullOrWhiteSpace(before) ? null : before;
        var query = "admin/webhook-gateway/events?limit=50"
            + (Verification is null ? "" : "&verification=" + ServiceApi.Escape(Verification))
            + (Before is null ? "" : "&before=" + ServiceApi.Escape(Before));
        await TryAsync(async () => Entries = await se.GetAsync<GatewayEntryPage>(query, ct));
        return Page();
    }

    public string OlderUrl(string before) =>
        "/webhook-gateway/platform?before=" + ServiceApi.Escape(before) + (Verification is null ? "" : "&verification=" + ServiceApi.Escape(Verification));
}
