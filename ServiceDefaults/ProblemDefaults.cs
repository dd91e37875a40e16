using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Every problem answer carries type, title, status and detail (docs/design: tenants show `detail` to people and
/// branch on `type`). ASP.NET fills the type of common statuses only and leaves detail to the caller.
/// </summary>
public static class ProblemDefaults
{
    private static readonly Dictionary<int, string> Types = new()
    {
        [StatusCodes.Status410Gone] = "https://tools.ietf.org/html/rfc9110#section-15.5.11",
        [StatusCodes.Status413PayloadTooLarge] = "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        [StatusCodes.Status429TooManyRequests] = "https://tools.ietf.org/html/rfc6585#section-4",
    };

    public static void Complete(ProblemDetails problem)
    {
        if (problem.Type is null && problem.Status is { } status)
        {
            problem.Type = Types.GetValueOrDefault(status, "about:blank");
        }
        if (problem.Detail is null)
        {
            problem.Detail = problem is HttpValidationProblemDetails { Errors.Count: > 0 } validation
                ? $"Invalid {(validation.Errors.Count == 1 ? "field" : "fields")}: {string.Join(", ", validation.Errors.Keys)}; see errors."
                : problem.Title;
        }
    }
}
