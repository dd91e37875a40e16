using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Management__* keys: where the operators' routes (/metrics, /swagger, /hangfire) are served. They are never open on
/// the public listener: either they live on a listener of their own (<see cref="Urls"/>, e.g. a loopback port that
/// only Prometheus and operators reach), or on the public listener behind HTTP basic auth
/// (<see cref="Username"/>/<see cref="Password"/>). With neither they answer 404.
/// </summary>
public sealed partial class ManagementOptions : IValidatableObject
{
    public const string Section = "Management";

    /// <summary>Extra listener(s) for the management routes, e.g. <c>http://127.0.0.1:7851</c>; ';'-separated, explicit ports.</summary>
    public string? Urls { get; set; }

    /// <summary>Basic-auth credential for /metrics and /swagger (both or neither; /hangfire keeps Hangfire__Dashboard*).</summary>
    public string? Username { get; set; }
    public string? Password { get; set; }

    public bool HasCredential => !string.IsNullOrEmpty(Username) && !string.IsNullOrEmpty(Password);

    /// <summary>The ports of <see cref="Urls"/>; a request that arrived on one of them is a management request.</summary>
    public IReadOnlySet<int> Ports => ParsePorts(Urls);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrEmpty(Username) != string.IsNullOrEmpty(Password))
        {
            yield return new ValidationResult("Management:Username and Management:Password go together.", [nameof(Username), nameof(Password)]);
        }
        if (Password is { Length: > 0 and < 16 })
        {
            yield return new ValidationResult("Management:Password must have at least 16 characters.", [nameof(Password)]);
        }
        foreach (var url in Split(Urls))
        {
            if (!IsListenUrl(url))
            {
                yield return new ValidationResult($"Management:Urls: '{url}' is not an http(s) URL with an explicit, non-zero port.", [nameof(Urls)]);
            }
        }
    }

    private static bool IsListenUrl(string url)
    {
        try
        {
            var address = BindingAddress.Parse(url);
            return address.Scheme is "http" or "https" && address.Port > 0 && ExplicitPort().IsMatch(url);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^https?://[^/]+:[0-9]+/?$")]
    private static partial System.Text.RegularExpressions.Regex ExplicitPort();

    internal static IEnumerable<string> Split(string? urls) =>
        (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static HashSet<int> ParsePorts(string? urls) =>
        [.. Split(urls).Select(u => BindingAddress.Parse(u).Port)];
}

public static class ManagementExtensions
{
    /// <summary>Paths only operators use; everything else (the API, pages, the webhook, health) is public.</summary>
    public static bool IsManagementPath(PathString path) =>
        path.StartsWithSegments("/metrics") || path.StartsWithSegments("/swagger") || path.StartsWithSegments("/hangfire");

    internal static void AddManagement(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ManagementOptions>().BindConfiguration(ManagementOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        var management = builder.Configuration[$"{ManagementOptions.Section}:Urls"];
        if (string.IsNullOrWhiteSpace(management))
        {
            return;
        }
        // Listen on the public URLs (--urls, ASPNETCORE_URLS, ASPNETCORE_HTTP_PORTS) and the management ones.
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey];
        if (string.IsNullOrWhiteSpace(urls))
        {
            var ports = builder.Configuration["HTTP_PORTS"];
            urls = string.IsNullOrWhiteSpace(ports) ? "http://localhost:5000"
                : string.Join(';', ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"http://*:{p}"));
        }
        builder.WebHost.UseUrls([.. ManagementOptions.Split(urls), .. ManagementOptions.Split(management)]);
    }

    /// <summary>
    /// Keeps the management routes off the public listener, and the public routes off the management listener (health
    /// answers on both, for probes).
    /// </summary>
    internal static void UseManagementGate(this WebApplication app)
    {
        var o = app.Services.GetRequiredService<IOptions<ManagementOptions>>().Value;
        var ports = o.Ports;
        var expected = o.HasCredential ? BasicCredential.Hash(o.Username!, o.Password!) : null;
        app.Use((context, next) =>
        {
            var path = context.Request.Path;
            var managementPath = IsManagementPath(path);
            if (ports.Count > 0)
            {
                var onManagementListener = ports.Contains(context.Connection.LocalPort);
                if (onManagementListener != managementPath && !path.StartsWithSegments("/health"))
                {
                    context.Response.StatusCode = StatusCodes.Status404NotFound;
                    return Task.CompletedTask;
                }
            }
            else if (managementPath && expected is null && !path.StartsWithSegments("/hangfire"))
            {
                // Nowhere to serve them safely: as if they did not exist.
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }
            // /hangfire has a credential of its own (Hangfire__Dashboard*): one Authorization header cannot carry two.
            if (managementPath && expected is not null && !path.StartsWithSegments("/hangfire")
                && !BasicCredential.Matches(context.Request.Headers.Authorization.ToString(), expected))
            {
                return BasicCredential.ChallengeAsync(context, "operations");
            }
            return next();
        });
    }
}

/// <summary>HTTP basic auth against one configured credential, compared in constant time.</summary>
public static class BasicCredential
{
    /// <summary>SHA-256 of "user:password", what <see cref="Matches"/> compares against.</summary>
    public static byte[] Hash(string username, string password) => SHA256.HashData(Encoding.UTF8.GetBytes($"{username}:{password}"));

    public static bool Matches(string authorizationHeader, byte[] expected)
    {
        if (!authorizationHeader.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        byte[] decoded;
        try
        {
            decoded = Convert.FromBase64String(authorizationHeader[6..].Trim());
        }
        catch (FormatException)
        {
            return false;
        }
        // Compare hashes so the comparison is constant-time and independent of the lengths.
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(decoded), expected);
    }

    public static Task ChallengeAsync(HttpContext context, string realm)
    {
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{realm}\", charset=\"UTF-8\"";
        return Task.CompletedTask;
    }
}
