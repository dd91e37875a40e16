using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.SendJobs;

/// <summary>
/// A job's bodies (GET /api/send-jobs/{id}, which answers them only with newsletter:content.read). The HTML is shown as
/// source, escaped: a tenant's markup never runs in the console's origin.
/// </summary>
public sealed class MessageModel(SendEngineApi se) : ConsolePage
{
    public SendJobResponse Job { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string id, CancellationToken ct)
    {
        if (!Can(Scopes.ContentRead))
        {
            return NotAllowed();
        }
        Job = await se.GetAsync<SendJobResponse>($"api/send-jobs/{ServiceApi.Escape(id)}", ct);
        return Page();
    }
}
