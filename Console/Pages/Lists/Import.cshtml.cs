using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Lists;

/// <summary>GET /api/lists/{list_id}/imports/{import_id} of Member Center: an import's progress.</summary>
public sealed class ImportModel(MemberCenterApi mc) : ConsolePage
{
    public SubscriberImportResponse Import { get; private set; } = null!;

    public async Task OnGetAsync(string listId, string importId, CancellationToken ct) =>
        Import = await mc.GetAsync<SubscriberImportResponse>($"api/lists/{ServiceApi.Escape(listId)}/imports/{ServiceApi.Escape(importId)}", ct);
}
