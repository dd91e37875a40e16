using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>Queues a reset mail through the outbox; answers the same whether or not the account exists.</summary>
public sealed class ForgotPasswordModel(PeopleService people) : PageModel
{
    [BindProperty] public string? Email { get; set; }
    public bool Sent { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!string.IsNullOrWhiteSpace(Email) && Email.Length <= 320)
        {
            await people.RequestPasswordResetAsync(Email.Trim(), ct);
        }
        Sent = true;
        return Page();
    }
}
