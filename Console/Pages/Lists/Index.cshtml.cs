using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Lists;

/// <summary>GET /api/lists and POST /api/lists of Member Center.</summary>
public sealed class IndexModel(MemberCenterApi mc) : ConsolePage
{
    public IReadOnlyList<MailingListResponse> Lists { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct) =>
        Lists = await mc.GetAsync<List<MailingListResponse>>("api/lists", ct);

    public async Task<IActionResult> OnPostCreateAsync(string? name, CancellationToken ct)
    {
        MailingListResponse? created = null;
        if (await TryAsync(async () => created = await mc.PostAsync<MailingListResponse>("api/lists", new CreateListRequest(name), ct)))
        {
            return Redirect($"/lists/{created!.ListId}");
        }
        await OnGetAsync(ct);
        return Page();
    }
}
