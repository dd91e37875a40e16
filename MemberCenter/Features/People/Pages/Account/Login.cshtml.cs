using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>Password sign-in; five wrong passwords lock the account for 15 minutes (Identity's lock-out).</summary>
public sealed class LoginModel(SignInManager<Person> signIn) : PageModel
{
    [BindProperty] public string? Email { get; set; }
    [BindProperty] public string? Password { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }
    public string? Error { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync()
    {
        if (string.IsNullOrWhiteSpace(Email) || string.IsNullOrEmpty(Password))
        {
            Error = "Enter your e-mail address and password.";
            return Page();
        }
        var result = await signIn.PasswordSignInAsync(Email.Trim(), Password, isPersistent: false, lockoutOnFailure: true);
        if (result.Succeeded)
        {
            return LocalRedirect(SafeReturnUrl(Url, ReturnUrl));
        }
        if (result.RequiresTwoFactor)
        {
            return RedirectToPage("LoginWith2fa", new { returnUrl = SafeReturnUrl(Url, ReturnUrl) });
        }
        Error = result.IsLockedOut
            ? "Too many failed attempts: this account is locked for 15 minutes. Try again later or reset your password."
            : result.IsNotAllowed
                ? "This account cannot sign in yet: confirm your e-mail address with the link we sent you."
                : "The e-mail address or password is wrong.";
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }

    /// <summary>Only a local path: the return URL is the authorize request, never another site (open redirect).</summary>
    internal static string SafeReturnUrl(IUrlHelper url, string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && url.IsLocalUrl(returnUrl) ? returnUrl : "/account";
}
