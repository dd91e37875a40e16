using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>Confirming is a POST from the page, so a mail scanner fetching the link confirms nothing.</summary>
public sealed class ConfirmEmailModel(UserManager<Person> users) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "user_id")] public string? UserId { get; set; }
    [BindProperty(SupportsGet = true)] public string? Code { get; set; }
    public string? Error { get; private set; }
    public bool Done { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync()
    {
        var token = AccountMailComposer.Decode(Code);
        var user = token is null || !Guid.TryParse(UserId, out _) ? null : await users.FindByIdAsync(UserId!);
        var result = user is null ? null : await users.ConfirmEmailAsync(user, token!);
        if (result?.Succeeded != true)
        {
            Error = "This link is not valid (it expired, or the address changed).";
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        Done = true;
        return Page();
    }
}
