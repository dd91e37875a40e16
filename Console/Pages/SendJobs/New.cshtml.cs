using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.SendJobs;

/// <summary>POST /api/send-jobs of Send Engine; the lists come from Member Center's GET /api/lists.</summary>
public sealed class NewModel(MemberCenterApi mc, SendEngineApi se) : ConsolePage
{
    public IReadOnlyList<MailingListResponse> Lists { get; private set; } = [];

    [BindProperty(SupportsGet = true)] public string? ListId { get; set; }
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public string? Subject { get; set; }
    [BindProperty] public string? BodyHtml { get; set; }
    [BindProperty] public string? BodyText { get; set; }
    /// <summary>A datetime-local value (yyyy-MM-ddTHH:mm) read as UTC.</summary>
    [BindProperty] public string? ScheduledAt { get; set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        Lists = await mc.GetAsync<List<MailingListResponse>>("api/lists", ct);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        string? scheduledAt = null;
        if (!string.IsNullOrWhiteSpace(ScheduledAt))
        {
            if (!DateTime.TryParse(ScheduledAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
            {
                Problem = "The send time is not a date and time.";
                return await OnGetAsync(ct);
            }
            scheduledAt = at.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        }
        SendJobResponse? job = null;
        var request = new CreateSendJobRequest(TenantId, ListId, Name, Subject,
            string.IsNullOrEmpty(BodyHtml) ? null : BodyHtml, string.IsNullOrEmpty(BodyText) ? null : BodyText, scheduledAt);
        if (await TryAsync(async () => job = await se.PostAsync<SendJobResponse>("api/send-jobs", request, ct)))
        {
            return Redirect($"/send-jobs/{job!.Id}");
        }
        return await OnGetAsync(ct);
    }
}
