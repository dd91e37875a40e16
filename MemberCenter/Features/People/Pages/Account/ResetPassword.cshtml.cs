using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>The reset link's page. The token is Identity's, bound to the security stamp: it works once.</summary>
public sealed class ResetPasswordModel(UserManager<Person> users) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "user_id")] public string? UserId { get; set; }
    [BindProperty(SupportsGet = true)] public string? Code { get; set; }
    [BindProperty] public string? Password { get; set; }
    public string? Error { get; private set; }
    public bool Done { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync()
    {
        var token = AccountMailComposer.Decode(Code);
        var user = token is null || !Guid.TryParse(UserId, out _) ? null : await users.FindByIdAsync(UserId!);
        if (user is null || string.IsNullOrEmpty(Password))
        {
            Error = user is null ? "This link is not valid. Ask for a new one." : "Enter a new password.";
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        var result = await users.ResetPasswordAsync(user, token!, Password);
        if (!result.Succeeded)
        {
            Error = result.Errors.Any(e => e.Code == "InvalidToken")
                ? "This link is not valid any more (it was used, or it expired). Ask for a new one."
                : string.Join(" ", result.Errors.Select(e => e.Description));
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        // A reset proves the mailbox; it also ends a lock-out the forgotten password caused.
        await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        Done = true;
        return Page();
    }
}
