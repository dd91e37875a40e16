using System.Net.Http.Json;
using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Lists;

/// <summary>
/// GET /api/lists/{list_id} and its subscribers (GET …/subscribers), add (POST …/subscribers), unsubscribe
/// (POST …/subscribers/{email}/unsubscribe) and CSV import (POST …/imports) of Member Center. Another tenant's list is
/// Member Center's 404, and so the console's.
/// </summary>
public sealed class DetailModel(MemberCenterApi mc, MemberCenterStream stream) : ConsolePage
{
    public MailingListResponse List { get; private set; } = null!;
    public ListSubscriberPage Subscribers { get; private set; } = new("", [], null);
    public string? Status { get; private set; }

    public async Task OnGetAsync(string listId, string? status, string? after, CancellationToken ct)
    {
        Status = string.IsNullOrEmpty(status) ? null : status;
        List = await mc.GetAsync<MailingListResponse>(ListPath(listId), ct);
        if (Can(Scopes.SubscriptionsRead))
        {
            Subscribers = await mc.GetAsync<ListSubscriberPage>(ListPath(listId) + "/subscribers?limit=50"
                + (Status is null ? "" : "&status=" + ServiceApi.Escape(Status)) + (after is null ? "" : "&after=" + ServiceApi.Escape(after)), ct);
        }
    }

    public async Task<IActionResult> OnPostAddAsync(string listId, string? email, string? mode, string? consentNote, CancellationToken ct)
    {
        if (!Can(Scopes.SubscriptionsWrite))
        {
            return NotAllowed();
        }
        AddSubscriberResponse? added = null;
        if (await TryAsync(async () => added = await mc.PostAsync<AddSubscriberResponse>(ListPath(listId) + "/subscribers",
                new AddSubscriberRequest(email, null, mode, string.IsNullOrWhiteSpace(consentNote) ? null : consentNote), ct)))
        {
            Notice = $"{added!.Email}: {added.Outcome.Replace('_', ' ')}, {added.Status}.";
        }
        await OnGetAsync(listId, null, null, ct);
        return Page();
    }

    public async Task<IActionResult> OnPostUnsubscribeAsync(string listId, string? email, CancellationToken ct)
    {
        if (!Can(Scopes.SubscriptionsWrite))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => mc.PostAsync($"{ListPath(listId)}/subscribers/{ServiceApi.Escape(email ?? "")}/unsubscribe", null, ct)))
        {
            Notice = $"{email} is unsubscribed.";
        }
        await OnGetAsync(listId, null, null, ct);
        return Page();
    }

    /// <summary>The uploaded file goes to Member Center as it arrives (not buffered whole); the import runs there.</summary>
    public async Task<IActionResult> OnPostImportAsync(string listId, IFormFile? file, string? mode, string? consentNote, CancellationToken ct)
    {
        if (!Can(Scopes.SubscriptionsWrite))
        {
            return NotAllowed();
        }
        if (file is null || file.Length == 0)
        {
            Problem = "Choose a CSV file with an email column.";
        }
        else
        {
            var query = "?mode=" + ServiceApi.Escape(mode ?? "") + (string.IsNullOrWhiteSpace(consentNote) ? "" : "&consent_note=" + ServiceApi.Escape(consentNote));
            await using var body = file.OpenReadStream();
            using var request = new HttpRequestMessage(HttpMethod.Post, ListPath(listId) + "/imports" + query)
            {
                Content = new StreamContent(body),
            };
            request.Content.Headers.ContentType = new("text/csv");
            SubscriberImportResponse? import = null;
            if (await TryAsync(async () =>
                {
                    using var response = await stream.SendStreamingAsync(request, ct);
                    import = await response.Content.ReadFromJsonAsync<SubscriberImportResponse>(ServiceApi.Json, ct);
                }))
            {
                return Redirect($"/lists/{ServiceApi.Escape(listId)}/imports/{import!.ImportId}");
            }
        }
        await OnGetAsync(listId, null, null, ct);
        return Page();
    }

    private static string ListPath(string listId) => $"api/lists/{ServiceApi.Escape(listId)}";
}
