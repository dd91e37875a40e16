using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Suppressions;

/// <summary>GET, POST /api/suppressions and DELETE /api/suppressions/{email} of Send Engine.</summary>
public sealed class IndexModel(SendEngineApi se) : ConsolePage
{
    public SuppressionPage Suppressed { get; private set; } = new([], null);

    public async Task OnGetAsync(string? after, CancellationToken ct) =>
        Suppressed = await se.GetAsync<SuppressionPage>("api/suppressions?limit=100" + (after is null ? "" : "&after=" + ServiceApi.Escape(after)), ct);

    public async Task<IActionResult> OnPostAddAsync(string? email, string? reason, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.PostAsync("api/suppressions", new AddSuppressionRequest(TenantId, email, reason), ct)))
        {
            Notice = $"{email} is suppressed.";
        }
        await OnGetAsync(null, ct);
        return Page();
    }

    public async Task<IActionResult> OnPostRemoveAsync(string? email, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.DeleteAsync("api/suppressions/" + ServiceApi.Escape(email ?? ""), ct)))
        {
            Notice = $"{email} is no longer suppressed.";
        }
        await OnGetAsync(null, ct);
        return Page();
    }
}
