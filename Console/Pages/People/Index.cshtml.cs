using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.People;

/// <summary>
/// Member Center's /api/members and /api/invitations (owners, newsletter:members). A refused change (the last owner's
/// demotion or removal is a 409, a bad address or role a 400) is shown above the page and nothing changes.
/// </summary>
public sealed class IndexModel(MemberCenterApi mc) : ConsolePage
{
    public IReadOnlyList<MemberResponse> Members { get; private set; } = [];
    public IReadOnlyList<InvitationResponse> Invitations { get; private set; } = [];

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!Can(Scopes.Members))
        {
            return NotAllowed();
        }
        await LoadAsync(ct);
        return Page();
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        Members = await mc.GetAsync<List<MemberResponse>>("api/members", ct);
        Invitations = await mc.GetAsync<List<InvitationResponse>>("api/invitations", ct);
    }

    public Task<IActionResult> OnPostChangeRoleAsync(string userId, string? role, CancellationToken ct) =>
        ActAsync(async () =>
        {
            var member = await mc.PatchAsync<MemberResponse>($"api/members/{ServiceApi.Escape(userId)}", new UpdateMemberRequest(role), ct);
            Notice = $"{member.Name ?? member.Email} is now {member.Role}.";
        }, ct);

    public Task<IActionResult> OnPostRemoveAsync(string userId, CancellationToken ct) =>
        ActAsync(async () =>
        {
            await mc.DeleteAsync($"api/members/{ServiceApi.Escape(userId)}", ct);
            Notice = "The member is removed from the tenant.";
        }, ct);

    public Task<IActionResult> OnPostInviteAsync(string? email, string? role, CancellationToken ct) =>
        ActAsync(async () =>
        {
            var invitation = await mc.PostAsync<InvitationResponse>("api/invitations", new CreateInvitationRequest(email, role), ct);
            Notice = $"An invitation was sent to {invitation.Email}.";
        }, ct);

    public Task<IActionResult> OnPostRevokeAsync(string invitationId, CancellationToken ct) =>
        ActAsync(async () =>
        {
            await mc.DeleteAsync($"api/invitations/{ServiceApi.Escape(invitationId)}", ct);
            Notice = "The invitation is revoked.";
        }, ct);

    private async Task<IActionResult> ActAsync(Func<Task> action, CancellationToken ct)
    {
        if (!Can(Scopes.Members))
        {
            return NotAllowed();
        }
        await TryAsync(action);
        await LoadAsync(ct);
        return Page();
    }
}
