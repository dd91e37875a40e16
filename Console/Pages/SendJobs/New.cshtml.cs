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
    [BindProperty] public string? PreviewEmail { get; set; }
    /// <summary>Extra merge values as a JSON object (the subscriber's preference keys).</summary>
    [BindProperty] public string? PreviewMerge { get; set; }

    public ComposePreviewResponse? Preview { get; private set; }

    /// <summary>POST /api/send-jobs/preview: the template rendered for one subscriber, by the job composer itself.</summary>
    public async Task<IActionResult> OnPostPreviewAsync(CancellationToken ct)
    {
        if (!Can(Scopes.ContentRead))
        {
            return NotAllowed();
        }
        if (Compose(null) is { } request)
        {
            await TryAsync(async () => Preview = await se.PostAsync<ComposePreviewResponse>("api/send-jobs/preview", request, ct));
        }
        return await OnGetAsync(ct);
    }

    /// <summary>POST /api/send-jobs/test-send to the person's own address (Send Engine refuses any other for a person).</summary>
    public async Task<IActionResult> OnPostTestSendAsync(CancellationToken ct)
    {
        var own = User.FindFirst(Auth.ConsoleClaims.Email)?.Value;
        if (Compose(own) is { } request)
        {
            TestSendResponse? sent = null;
            if (await TryAsync(async () => sent = await se.PostAsync<TestSendResponse>("api/send-jobs/test-send", request, ct)))
            {
                Notice = $"Test message to {sent!.To}: {sent.Outcome}.";
            }
        }
        return await OnGetAsync(ct);
    }

    private ComposeRequest? Compose(string? to)
    {
        var merge = new Dictionary<string, System.Text.Json.JsonElement>();
        if (!string.IsNullOrWhiteSpace(PreviewMerge))
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(PreviewMerge);
                if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
                {
                    throw new System.Text.Json.JsonException();
                }
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    merge[p.Name] = p.Value.Clone();
                }
            }
            catch (System.Text.Json.JsonException)
            {
                Problem = "The merge values must be a JSON object, such as {\"first_name\": \"Ada\"}.";
                return null;
            }
        }
        if (!string.IsNullOrWhiteSpace(PreviewEmail))
        {
            merge["email"] = System.Text.Json.JsonSerializer.SerializeToElement(PreviewEmail);
        }
        return new ComposeRequest(Subject, string.IsNullOrEmpty(BodyHtml) ? null : BodyHtml, string.IsNullOrEmpty(BodyText) ? null : BodyText, merge, to);
    }

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
