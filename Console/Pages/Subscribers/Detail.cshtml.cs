using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Subscribers;

/// <summary>GET /api/subscribers/{email} of Member Center: subscriptions, preferences (content.read) and consent trail.</summary>
public sealed class DetailModel(MemberCenterApi mc) : ConsolePage
{
    public SubscriberDetail Subscriber { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string email, CancellationToken ct)
    {
        if (!Can(Scopes.SubscriptionsRead))
        {
            return NotAllowed();
        }
        Subscriber = await mc.GetAsync<SubscriberDetail>("api/subscribers/" + ServiceApi.Escape(email), ct);
        return Page();
    }
}
