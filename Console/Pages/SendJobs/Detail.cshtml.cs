using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.SendJobs;

/// <summary>
/// GET /api/send-jobs/{id} with its recipients, events and stats; the operations (cancel, pause, resume, trigger,
/// retry-failed, resolve unknown). Another tenant's job is Send Engine's 404 and so the console's.
/// </summary>
public sealed class DetailModel(SendEngineApi se) : ConsolePage
{
    public SendJobResponse Job { get; private set; } = null!;
    public SendJobRecipientPage Recipients { get; private set; } = new([], null);
    public EmailEventPage Events { get; private set; } = new([], null);
    public StatsChart? Chart { get; private set; }
    public string Bucket { get; private set; } = "minute";
    public string? Status { get; private set; }

    public bool IsFinal => Job.Status is SendJobStatuses.Completed or SendJobStatuses.Cancelled or SendJobStatuses.Failed;

    public async Task OnGetAsync(string id, string? status, string? after, string? bucket, CancellationToken ct)
    {
        Status = string.IsNullOrEmpty(status) ? null : status;
        Bucket = bucket == "hour" ? "hour" : "minute";
        var path = JobPath(id);
        Job = await se.GetAsync<SendJobResponse>(path, ct);
        var query = "?limit=50" + (Status is null ? "" : "&status=" + ServiceApi.Escape(Status))
            + (after is null ? "" : "&after=" + ServiceApi.Escape(after));
        var recipients = se.GetAsync<SendJobRecipientPage>(path + "/recipients" + query, ct);
        var events = se.GetAsync<EmailEventPage>(path + "/events?limit=20", ct);
        var stats = se.GetAsync<SendJobStatsResponse>(path + "/stats?bucket=" + Bucket, ct);
        Recipients = await recipients;
        Events = await events;
        Chart = new StatsChart(await stats);
    }

    public Task<IActionResult> OnPostCancelAsync(string id, CancellationToken ct) => ActAsync(id, "cancel", null, "The job is cancelled.", ct);

    public Task<IActionResult> OnPostPauseAsync(string id, CancellationToken ct) => ActAsync(id, "pause", null, "The job is paused; messages in flight finish.", ct);

    public Task<IActionResult> OnPostResumeAsync(string id, CancellationToken ct) => ActAsync(id, "resume", null, "The job resumes.", ct);

    public Task<IActionResult> OnPostTriggerAsync(string id, CancellationToken ct) => ActAsync(id, "trigger", null, "The job starts now.", ct);

    public Task<IActionResult> OnPostRetryFailedAsync(string id, CancellationToken ct) =>
        ActAsync(id, "retry-failed", null, "The failed recipients are queued again.", ct);

    public Task<IActionResult> OnPostResolveAsync(string id, string? resolution, string? note, CancellationToken ct) =>
        ActAsync(id, "recipients/resolve", new ResolveRecipientsRequest(null, true, resolution, string.IsNullOrWhiteSpace(note) ? null : note),
            $"The unknown outcomes are resolved as {resolution}.", ct);

    private async Task<IActionResult> ActAsync(string id, string action, object? body, string notice, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        var done = await TryAsync(() => se.PostAsync($"{JobPath(id)}/{action}", body, ct));
        Notice = done ? notice : null;
        await OnGetAsync(id, null, null, null, ct);
        return Page();
    }

    private static string JobPath(string id) => $"api/send-jobs/{ServiceApi.Escape(id)}";
}
