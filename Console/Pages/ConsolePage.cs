using System.Net;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using NewsletterConsole.Api;
using NewsletterConsole.Auth;

namespace NewsletterConsole.Pages;

/// <summary>What every console page shares: the person's scopes (to hide controls) and the API errors shown in place.</summary>
public abstract class ConsolePage : PageModel
{
    /// <summary>A message for the person after a refused action (validation, conflict), shown above the page.</summary>
    public string? Problem { get; set; }

    /// <summary>A confirmation after a successful action.</summary>
    public string? Notice { get; set; }

    public bool Can(string scope) => User.HasScope(scope);

    /// <summary>A 403 page for a control the person's role lacks (the API would refuse it too).</summary>
    protected IActionResult NotAllowed() => StatusCode(StatusCodes.Status403Forbidden);

    public string? TenantId => User.TenantId();

    /// <summary>Runs an API action; a 400, 409, 422 or 429 becomes <see cref="Problem"/> instead of an error page.</summary>
    protected async Task<bool> TryAsync(Func<Task> action)
    {
        try
        {
            await action();
            return true;
        }
        catch (ApiException e) when (e.Status is HttpStatusCode.BadRequest or HttpStatusCode.Conflict
            or HttpStatusCode.UnprocessableEntity or HttpStatusCode.TooManyRequests or HttpStatusCode.RequestEntityTooLarge)
        {
            Problem = e.Describe();
            return false;
        }
    }

    public static string When(DateTimeOffset? value) =>
        value is { } v ? v.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture) : "";
}
