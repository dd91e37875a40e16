using Microsoft.AspNetCore.Mvc.RazorPages;

namespace NewsletterConsole.Pages;

/// <summary>The page of an error status: the console's own, also when a service answered it (ApiErrorPages).</summary>
public sealed class StatusCodeModel : PageModel
{
    public string Heading { get; private set; } = "";
    public string Explanation { get; private set; } = "";

    public void OnGet(int code) => Describe(code);

    public void OnPost(int code) => Describe(code);

    private void Describe(int code)
    {
        // Re-executed for the original status (404 of another tenant's job, 403 of a missing scope): keep it.
        if (HttpContext.Features.Get<Microsoft.AspNetCore.Diagnostics.IStatusCodeReExecuteFeature>() is null && code is >= 400 and < 600)
        {
            Response.StatusCode = code;
        }
        (Heading, Explanation) = code switch
        {
            400 => ("Bad request", "The request could not be used; reload the page and try again."),
            401 => ("Sign-in failed", "Member Center did not sign you in. Try again from the start page."),
            403 => ("Not allowed", "Your role in this tenant does not allow this."),
            404 => ("Not found", "There is nothing here, or it belongs to another tenant."),
            409 => ("Conflict", "The object changed state; reload it and try again."),
            502 => ("Service error", "A service of the platform did not answer as expected. Try again shortly."),
            _ => ("Error", $"The console answered {code}."),
        };
    }
}
