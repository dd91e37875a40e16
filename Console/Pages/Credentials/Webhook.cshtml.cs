using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Credentials;

/// <summary>GET /api/webhook-endpoints/{id} and its /attempts of Send Engine.</summary>
public sealed class WebhookModel(SendEngineApi se) : ConsolePage
{
    public WebhookEndpointResponse Endpoint { get; private set; } = null!;
    public WebhookAttemptPage Attempts { get; private set; } = new([], null);

    public async Task<IActionResult> OnGetAsync(string endpointId, long? before, CancellationToken ct)
    {
        if (!Can(Scopes.Webhooks))
        {
            return NotAllowed();
        }
        var path = $"api/webhook-endpoints/{ServiceApi.Escape(endpointId)}";
        Endpoint = await se.GetAsync<WebhookEndpointResponse>(path, ct);
        Attempts = await se.GetAsync<WebhookAttemptPage>(path + "/attempts?limit=50" + (before is null ? "" : $"&before={before}"), ct);
        return Page();
    }
}
