using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Pages.Account;

/// <summary>Starts a sign-in at Member Center (optionally for one tenant): where a failed silent switch lands.</summary>
[AllowAnonymous]
public sealed class SignInModel : PageModel
{
    public IActionResult OnGet(string? tenantId, string? returnUrl)
    {
        var properties = new AuthenticationProperties { RedirectUri = Url.IsLocalUrl(returnUrl) ? returnUrl : "/" };
        if (!string.IsNullOrEmpty(tenantId))
        {
            properties.Items[AuthenticationExtensions.TenantItem] = tenantId;
        }
        return Challenge(properties, OpenIdConnectDefaults.AuthenticationScheme);
    }
}
