using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Options;
using NewsletterConsole.Extensions;

namespace NewsletterConsole.Auth;

/// <summary>
/// Renews the person's access token with the refresh token shortly before it expires, on the server, when the cookie
/// is validated; a refused refresh signs the person out of the console (their next request starts a new sign-in).
/// </summary>
public sealed class TokenRefresher(HttpClient http, IOptions<ConsoleOptions> options, TimeProvider time, ILogger<TokenRefresher> logger)
{
    public async Task ValidatePrincipalAsync(CookieValidatePrincipalContext context)
    {
        var expiresAt = context.Properties.GetTokenValue("expires_at");
        if (expiresAt is null || !DateTimeOffset.TryParse(expiresAt, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var expires))
        {
            return;
        }
        if (expires - time.GetUtcNow() > options.Value.RefreshBefore)
        {
            return;
        }
        var refreshToken = context.Properties.GetTokenValue("refresh_token");
        var refreshed = refreshToken is null ? null : await RefreshAsync(refreshToken, context.HttpContext.RequestAborted);
        if (refreshed is null)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return;
        }
        context.Properties.UpdateTokenValue("access_token", refreshed.AccessToken);
        if (refreshed.RefreshToken is not null)
        {
            context.Properties.UpdateTokenValue("refresh_token", refreshed.RefreshToken);
        }
        context.Properties.UpdateTokenValue("expires_at",
            time.GetUtcNow().AddSeconds(refreshed.ExpiresIn).ToString("o", CultureInfo.InvariantCulture));
        context.ReplacePrincipal(ConsoleClaims.FromAccessToken(refreshed.AccessToken));
        context.ShouldRenew = true;
    }

    private async Task<Refreshed?> RefreshAsync(string refreshToken, CancellationToken cancellationToken)
    {
        var o = options.Value;
        using var response = await http.PostAsync(new Uri(new Uri(o.MemberCenterUrl.TrimEnd('/') + "/"), "oauth/token"),
            new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "refresh_token",
                ["refresh_token"] = refreshToken,
                ["client_id"] = o.ClientId,
                ["client_secret"] = o.ClientSecret,
            }), cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            logger.LogInformation("Refreshing a person's access token was refused ({Status}); they sign in again", (int)response.StatusCode);
            return null;
        }
        using var body = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken));
        var root = body.RootElement;
        return new Refreshed(
            root.GetProperty("access_token").GetString()!,
            root.TryGetProperty("refresh_token", out var r) ? r.GetString() : null,
            root.TryGetProperty("expires_in", out var e) ? e.GetInt32() : 3600);
    }

    private sealed record Refreshed(string AccessToken, string? RefreshToken, int ExpiresIn);
}
