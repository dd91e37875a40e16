using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.SendJobs;

/// <summary>
/// GET /api/send-jobs/{id}, its recipients and events; POST cancel and resume. Another tenant's job is Send Engine's
/// 404 and so the console's.
/// </summary>
public sealed class DetailModel(SendEngineApi se) : ConsolePage
{
    public SendJobResponse Job { get; private set; } = null!;
    public SendJobRecipientPage Recipients { get; private set; } = new([], null);
    public EmailEventPage Events { get; private set; } = new([], null);
    public string? Status { get; private set; }

    public async Task OnGetAsync(string id, string? status, string? after, CancellationToken ct)
    {
        Status = string.IsNullOrEmpty(status) ? null : status;
        var path = $"api/send-jobs/{ServiceApi.Escape(id)}";
        Job = await se.GetAsync<SendJobResponse>(path, ct);
        var query = "?limit=50" + (Status is null ? "" : "&status=" + ServiceApi.Escape(Status))
            + (after is null ? "" : "&after=" + ServiceApi.Escape(after));
        Recipients = await se.GetAsync<SendJobRecipientPage>(path + "/recipients" + query, ct);
        Events = await se.GetAsync<EmailEventPage>(path + "/events?limit=20", ct);
    }

    public Task<IActionResult> OnPostCancelAsync(string id, CancellationToken ct) => ActAsync(id, "cancel", "The job is cancelled.", ct);

    public Task<IActionResult> OnPostResumeAsync(string id, CancellationToken ct) => ActAsync(id, "resume", "The job resumes.", ct);

    private async Task<IActionResult> ActAsync(string id, string action, string notice, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        var done = await TryAsync(() => se.PostAsync($"api/send-jobs/{ServiceApi.Escape(id)}/{action}", null, ct));
        Notice = done ? notice : null;
        await OnGetAsync(id, null, null, ct);
        return Page();
    }
}
