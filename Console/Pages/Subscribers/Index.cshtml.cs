using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Subscribers;

/// <summary>GET /api/subscribers?email= (address prefix) of Member Center.</summary>
public sealed class IndexModel(MemberCenterApi mc) : ConsolePage
{
    public SubscriberPage Found { get; private set; } = new([], null);
    public string? Email { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? email, string? after, CancellationToken ct)
    {
        if (!Can(Scopes.SubscriptionsRead))
        {
            return NotAllowed();
        }
        Email = string.IsNullOrWhiteSpace(email) ? null : email.Trim();
        await TryAsync(async () => Found = await mc.GetAsync<SubscriberPage>("api/subscribers?limit=50"
            + (Email is null ? "" : "&email=" + ServiceApi.Escape(Email)) + (after is null ? "" : "&after=" + ServiceApi.Escape(after)), ct));
        return Page();
    }
}
