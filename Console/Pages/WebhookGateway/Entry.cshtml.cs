using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.WebhookGateway;

/// <summary>GET /api/webhook-gateway/events/{id} and its apply action (events held while ingestion was off).</summary>
public sealed class EntryModel(SendEngineApi se) : ConsolePage
{
    public GatewayEntryResponse Entry { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string entryId, CancellationToken ct)
    {
        if (!Can(Scopes.LogsRead) && !Can(Scopes.Webhooks))
        {
            return NotAllowed();
        }
        Entry = await se.GetAsync<GatewayEntryResponse>(Path(entryId), ct);
        return Page();
    }

    public async Task<IActionResult> OnPostApplyAsync(string entryId, CancellationToken ct)
    {
        if (!Can(Scopes.Webhooks))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.PostAsync(Path(entryId) + "/apply", null, ct)))
        {
            Notice = "The held events are being applied.";
        }
        Entry = await se.GetAsync<GatewayEntryResponse>(Path(entryId), ct);
        return Page();
    }

    private static string Path(string entryId) => "api/webhook-gateway/events/" + ServiceApi.Escape(entryId);
}
