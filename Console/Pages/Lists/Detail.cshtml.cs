using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Lists;

/// <summary>GET /api/lists/{listId} of Member Center (another tenant's list is its 404, and so the console's).</summary>
public sealed class DetailModel(MemberCenterApi mc) : ConsolePage
{
    public MailingListResponse List { get; private set; } = null!;

    public async Task OnGetAsync(string listId, CancellationToken ct) =>
        List = await mc.GetAsync<MailingListResponse>($"api/lists/{ServiceApi.Escape(listId)}", ct);
}
