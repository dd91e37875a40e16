using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.WebhookGateway;

/// <summary>GET /admin/webhook-gateway/events/{id}: one platform log entry. Platform operators only.</summary>
public sealed class PlatformEntryModel(SendEngineApi se) : ConsolePage
{
    public GatewayEntryResponse Entry { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string entryId, CancellationToken ct)
    {
        if (!Can(Scopes.PlatformAdmin))
        {
            return NotAllowed();
        }
        Entry = await se.GetAsync<GatewayEntryResponse>("admin/webhook-gateway/events/" + ServiceApi.Escape(entryId), ct);
        return Page();
    }
}
