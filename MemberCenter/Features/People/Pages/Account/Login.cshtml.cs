using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>
/// Password sign-in (five wrong passwords lock the account for 15 minutes, Identity's lock-out) or a passkey: the page
/// carries request options without an account (any discoverable passkey of this site), the script posts the browser's
/// answer to the Passkey handler. A passkey verifies the person on the device, so it needs no TOTP code after it.
/// </summary>
public sealed class LoginModel(SignInManager<Person> signIn) : PageModel
{
    [BindProperty] public string? Email { get; set; }
    [BindProperty] public string? Password { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }
    [BindProperty] public string? CredentialJson { get; set; }
    public string? Error { get; private set; }
    /// <summary>WebAuthn request options with a fresh challenge (Identity keeps it in its two-factor cookie).</summary>
    public string RequestOptions { get; private set; } = "";

    public async Task OnGetAsync() => RequestOptions = await signIn.MakePasskeyRequestOptionsAsync(null);

    public async Task<IActionResult> OnPostPasskeyAsync()
    {
        if (!string.IsNullOrEmpty(CredentialJson) && CredentialJson.Length <= 64 * 1024)
        {
            var result = await signIn.PasskeySignInAsync(CredentialJson);
            if (result.Succeeded)
            {
                return LocalRedirect(SafeReturnUrl(Url, ReturnUrl));
            }
            Error = result.IsLockedOut
                ? "This account is locked for a while after too many failed attempts. Try again later or reset your password."
                : result.IsNotAllowed
                    ? "This account cannot sign in yet: confirm your e-mail address with the link we sent you."
                    : "This passkey is not registered here (it may have been removed). Sign in with your password.";
        }
        else
        {
            Error = "No passkey was received.";
        }
        RequestOptions = await signIn.MakePasskeyRequestOptionsAsync(null);
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync()
    {
        if (string.IsNullOrWhiteSpace(Email) || string.IsNullOrEmpty(Password))
        {
            Error = "Enter your e-mail address and password.";
            RequestOptions = await signIn.MakePasskeyRequestOptionsAsync(null);
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
        RequestOptions = await signIn.MakePasskeyRequestOptionsAsync(null);
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }

    /// <summary>Only a local path: the return URL is the authorize request, never another site (open redirect).</summary>
    internal static string SafeReturnUrl(IUrlHelper url, string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && url.IsLocalUrl(returnUrl) ? returnUrl : "/account";
}
