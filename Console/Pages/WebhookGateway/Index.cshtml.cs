using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.WebhookGateway;

/// <summary>
/// Send Engine's /api/webhook-gateway: the inbound event log (live through the console's relay of its stream), the
/// ingestion switch, the test console and the outbound attempts with replay. Viewers read (newsletter:logs.read);
/// admins and owners change (newsletter:webhooks).
/// </summary>
public sealed class IndexModel(SendEngineApi se) : ConsolePage
{
    public GatewayEntryPage Entries { get; private set; } = new([], null);
    public WebhookAttemptPage Attempts { get; private set; } = new([], null);
    public GatewayIngestion Ingestion { get; private set; } = new(true, null);
    public GatewayTestEventResponse? TestResult { get; private set; }
    public string? Verification { get; private set; }
    public string? Before { get; private set; }

    public bool CanRead => Can(Scopes.LogsRead) || Can(Scopes.Webhooks);
    public bool CanChange => Can(Scopes.Webhooks);

    public async Task<IActionResult> OnGetAsync(string? verification, string? before, CancellationToken ct)
    {
        if (!CanRead)
        {
            return NotAllowed();
        }
        Verification = string.IsNullOrWhiteSpace(verification) ? null : verification;
        Before = string.IsNullOrWhiteSpace(before) ? null : before;
        await LoadAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostIngestionAsync(bool enabled, CancellationToken ct)
    {
        if (!CanChange)
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.PutAsync<GatewayIngestion>("api/webhook-gateway/ingestion", new SetGatewayIngestionRequest(enabled), ct)))
        {
            Notice = enabled ? "Ingestion is on: new events are applied." : "Ingestion is off: events are answered and logged, not applied.";
        }
        await LoadAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostTestAsync(string? type, CancellationToken ct)
    {
        if (!CanChange)
        {
            return NotAllowed();
        }
        if (await TryAsync(async () => TestResult = await se.PostAsync<GatewayTestEventResponse>("api/webhook-gateway/test-events",
                new GatewayTestEventRequest(type), ct)))
        {
            Notice = $"Test event {type} sent: answered {TestResult!.Response.Status}, outcome {TestResult.Outcome ?? "pending"}.";
        }
        await LoadAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostReplayAsync(long attemptId, CancellationToken ct)
    {
        if (!CanChange)
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.PostAsync($"api/webhook-gateway/attempts/{attemptId}/replay", null, ct)))
        {
            Notice = $"Attempt {attemptId}: its event is queued again with the same webhook-id.";
        }
        await LoadAsync(ct);
        return Page();
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var query = "api/webhook-gateway/events?limit=50"
            + (Verification is null ? "" : "&verification=" + ServiceApi.Escape(Verification))
            + (Before is null ? "" : "&before=" + ServiceApi.Escape(Before));
        await TryAsync(async () => Entries = await se.GetAsync<GatewayEntryPage>(query, ct));
        Ingestion = await se.GetAsync<GatewayIngestion>("api/webhook-gateway/ingestion", ct);
        Attempts = await se.GetAsync<WebhookAttemptPage>("api/webhook-gateway/attempts?limit=20", ct);
    }

    public string OlderUrl(string before) =>
        "/webhook-gateway?before=" + ServiceApi.Escape(before) + (Verification is null ? "" : "&verification=" + ServiceApi.Escape(Verification));
}
