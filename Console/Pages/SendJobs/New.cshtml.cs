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
    /// <summary>The job's From address (optional: the platform's address when empty); its domain must be a verified sender domain.</summary>
    [BindProperty] public string? FromEmail { get; set; }
    [BindProperty] public string? FromName { get; set; }
    [BindProperty] public string? PreviewEmail { get; set; }
    /// <summary>Extra merge values as a JSON object (the subscriber's preference keys).</summary>
    [BindProperty] public string? PreviewMerge { get; set; }

    public ComposePreviewResponse? Preview { get; private set; }

    /// <summary>The chosen subscriber's subscription to the job's list whose stored data the preview used.</summary>
    public SubscriberSubscription? PreviewSubscription { get; private set; }

    /// <summary>Some of the chosen list's confirmed subscribers, offered as preview addresses.</summary>
    public IReadOnlyList<ListSubscriber> ListSubscribers { get; private set; } = [];

    /// <summary>
    /// POST /api/send-jobs/preview: the template rendered by the job composer itself. With a subscriber's address, the
    /// merge values are what a job would use for them: Member Center's stored address and that subscriber's preferences
    /// on the chosen list (GET /api/subscribers/{email}), the data Send Engine's recipient snapshot copies.
    /// </summary>
    public async Task<IActionResult> OnPostPreviewAsync(CancellationToken ct)
    {
        if (!Can(Scopes.ContentRead))
        {
            return NotAllowed();
        }
        IReadOnlyDictionary<string, System.Text.Json.JsonElement>? stored = null;
        string? storedEmail = null;
        if (!string.IsNullOrWhiteSpace(PreviewEmail))
        {
            SubscriberDetail? subscriber = null;
            try
            {
                subscriber = await mc.FindAsync<SubscriberDetail>("api/subscribers/" + ServiceApi.Escape(PreviewEmail.Trim()), ct);
            }
            catch (ApiException e) when (e.Status is System.Net.HttpStatusCode.BadRequest or System.Net.HttpStatusCode.Forbidden)
            {
                Problem = e.Status == System.Net.HttpStatusCode.Forbidden ? "Your role cannot read subscribers." : e.Describe();
                return await OnGetAsync(ct);
            }
            PreviewSubscription = subscriber?.Subscriptions.FirstOrDefault(s => s.ListId == ListId);
            if (subscriber is null || PreviewSubscription is null)
            {
                Problem = $"{PreviewEmail} is not a subscriber of the chosen list.";
                return await OnGetAsync(ct);
            }
            if (PreviewSubscription.Status != SubscriptionStatuses.Confirmed || subscriber.UndeliverableAt is not null)
            {
                Notice = $"{subscriber.Email} is {(subscriber.UndeliverableAt is null ? PreviewSubscription.Status : "undeliverable")} on this list: a job would not send to them.";
            }
            (stored, storedEmail) = (PreviewSubscription.Preferences ?? new Dictionary<string, System.Text.Json.JsonElement>(), subscriber.Email);
        }
        if (Compose(null, stored, storedEmail) is { } request)
        {
            await TryAsync(async () => Preview = await se.PostAsync<ComposePreviewResponse>("api/send-jobs/preview", request, ct));
        }
        return await OnGetAsync(ct);
    }

    /// <summary>POST /api/send-jobs/test-send to the person's own address (Send Engine refuses any other for a person).</summary>
    public async Task<IActionResult> OnPostTestSendAsync(CancellationToken ct)
    {
        var own = User.FindFirst(Auth.ConsoleClaims.Email)?.Value;
        if (Compose(own, null, null) is { } request)
        {
            TestSendResponse? sent = null;
            if (await TryAsync(async () => sent = await se.PostAsync<TestSendResponse>("api/send-jobs/test-send", request, ct)))
            {
                Notice = $"Test message to {sent!.To}: {sent.Outcome}.";
            }
        }
        return await OnGetAsync(ct);
    }

    /// <summary>The request for preview or test send: a subscriber's stored data when given, else the typed merge values; the
    /// chosen list, so the footer is in its default language as the job's mail would be.</summary>
    private ComposeRequest? Compose(string? to, IReadOnlyDictionary<string, System.Text.Json.JsonElement>? stored, string? storedEmail)
    {
        var merge = new Dictionary<string, System.Text.Json.JsonElement>();
        if (stored is not null)
        {
            foreach (var (key, value) in stored)
            {
                merge[key] = value;
            }
            merge["email"] = System.Text.Json.JsonSerializer.SerializeToElement(storedEmail);
            return new ComposeRequest(Subject, string.IsNullOrEmpty(BodyHtml) ? null : BodyHtml, string.IsNullOrEmpty(BodyText) ? null : BodyText, merge, to,
                Blank(FromEmail), Blank(FromName), Blank(ListId));
        }
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
        return new ComposeRequest(Subject, string.IsNullOrEmpty(BodyHtml) ? null : BodyHtml, string.IsNullOrEmpty(BodyText) ? null : BodyText, merge, to,
                Blank(FromEmail), Blank(FromName), Blank(ListId));
    }

    /// <summary>An empty field is left out of the request (the API's default), not sent as "".</summary>
    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        Lists = await mc.GetAsync<List<MailingListResponse>>("api/lists", ct);
        var list = ListId ?? Lists.FirstOrDefault()?.ListId;
        if (list is not null && Can(Scopes.SubscriptionsRead))
        {
            // Optional help for picking an address: a refusal or a vanished list leaves the field free-form.
            try
            {
                ListSubscribers = (await mc.GetAsync<ListSubscriberPage>($"api/lists/{ServiceApi.Escape(list)}/subscribers?status=confirmed&limit=50", ct)).Items;
            }
            catch (ApiException)
            {
                ListSubscribers = [];
            }
        }
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
            string.IsNullOrEmpty(BodyHtml) ? null : BodyHtml, string.IsNullOrEmpty(BodyText) ? null : BodyText, scheduledAt,
            Blank(FromEmail), Blank(FromName));
        if (await TryAsync(async () => job = await se.PostAsync<SendJobResponse>("api/send-jobs", request, ct)))
        {
            return Redirect($"/send-jobs/{job!.Id}");
        }
        return await OnGetAsync(ct);
    }
}
