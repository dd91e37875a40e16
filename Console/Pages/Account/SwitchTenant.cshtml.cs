using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Pages.Account;

/// <summary>
/// The one-click tenant switch: a new authorize request with prompt=none and the chosen tenant_id. Member Center's
/// session answers at once with a code for a token of that tenant (or an error when the person is not a member).
/// </summary>
public sealed class SwitchTenantModel : PageModel
{
    public IActionResult OnGet() => Redirect("/");

    public IActionResult OnPost(string? tenantId)
    {
        if (string.IsNullOrWhiteSpace(tenantId))
        {
            return Redirect("/");
        }
        var properties = new AuthenticationProperties { RedirectUri = "/" };
        properties.Items[AuthenticationExtensions.TenantItem] = tenantId;
        properties.Items[AuthenticationExtensions.PromptItem] = "none";
        return Challenge(properties, OpenIdConnectDefaults.AuthenticationScheme);
    }
}
