using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>A recovery code instead of the TOTP code; each works once.</summary>
public sealed class LoginWithRecoveryCodeModel(SignInManager<Person> signIn) : PageModel
{
    [BindProperty] public string? Code { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }
    public string? Error { get; private set; }

    public async Task<IActionResult> OnGetAsync() =>
        await signIn.GetTwoFactorAuthenticationUserAsync() is null ? RedirectToPage("Login") : Page();

    public async Task<IActionResult> OnPostAsync()
    {
        if (await signIn.GetTwoFactorAuthenticationUserAsync() is null)
        {
            return RedirectToPage("Login");
        }
        var result = await signIn.TwoFactorRecoveryCodeSignInAsync((Code ?? "").Replace(" ", "", StringComparison.Ordinal));
        if (result.Succeeded)
        {
            return LocalRedirect(LoginModel.SafeReturnUrl(Url, ReturnUrl));
        }
        Error = result.IsLockedOut ? "Too many failed attempts: this account is locked for 15 minutes." : "The recovery code is wrong or was used.";
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }
}
