using System.Net.Http.Headers;
using Microsoft.AspNetCore.Authentication;

namespace NewsletterConsole.Api;

/// <summary>Attaches the signed-in person's access token (kept server-side in the ticket store) to each API call.</summary>
public sealed class BearerTokenHandler(IHttpContextAccessor accessor) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var context = accessor.HttpContext ?? throw new InvalidOperationException("API calls are made on behalf of a request.");
        var token = await context.GetTokenAsync("access_token");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        return await base.SendAsync(request, cancellationToken);
    }
}
