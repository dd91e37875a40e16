using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace MemberCenter.Features.People;

/// <summary>
/// The /account pages' headers: a strict CSP like the reader pages' (inline styles only; the only script is the
/// passkey script, allowed by a per-response nonce), no framing, no caching, no referrer. form-action also allows the
/// console: after the login form, Chromium applies form-action to
/// the redirects that carry the code back to the console's redirect URI.
/// </summary>
public sealed class AccountPageHeaders : IAsyncPageFilter
{
    private const string NonceItem = "account-csp-nonce";

    /// <summary>The script nonce of this response (for the passkey script element).</summary>
    public static string Nonce(HttpContext http) => http.Items[NonceItem] as string ?? "";

    public Task OnPageHandlerSelectionAsync(PageHandlerSelectedContext context) => Task.CompletedTask;

    public async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        var http = context.HttpContext;
        var console = http.RequestServices.GetRequiredService<IOptions<ConsoleOptions>>().Value;
        var consoleOrigin = Uri.TryCreate(console.PublicUrl, UriKind.Absolute, out var u) ? " " + u.GetLeftPart(UriPartial.Authority) : "";
        var nonce = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        http.Items[NonceItem] = nonce;
        var headers = http.Response.Headers;
        headers[HeaderNames.CacheControl] = "no-store";
        headers["Referrer-Policy"] = "no-referrer";
        headers["X-Frame-Options"] = "DENY";
        headers["X-Content-Type-Options"] = "nosniff";
        headers[HeaderNames.ContentSecurityPolicy] =
            $"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data:; form-action 'self'{consoleOrigin}; frame-ancestors 'none'; base-uri 'none'";
        await next();
    }
}
