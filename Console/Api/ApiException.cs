using System.Net;
using System.Text.Json;

namespace NewsletterConsole.Api;

/// <summary>
/// A service answered an error. 401/403/404 become the console's own pages (ApiErrorPages), so another tenant's object
/// opened by URL is the console's 404 too; pages catch 400/409 to show the problem's detail next to the form.
/// </summary>
public sealed class ApiException(HttpStatusCode status, string? title, string? detail, IReadOnlyDictionary<string, string[]> errors)
    : Exception($"The API answered {(int)status}: {detail ?? title}")
{
    public HttpStatusCode Status { get; } = status;
    public string? Title { get; } = title;
    public string? Detail { get; } = detail;
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;

    /// <summary>A sentence for the person: the problem's detail, its field errors, or its title.</summary>
    public string Describe() =>
        string.Join(" ", new[] { Detail ?? Title ?? $"The service answered {(int)Status}." }
            .Concat(Errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))));

    public static async Task<ApiException> FromResponseAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string? title = null, detail = null;
        var errors = new Dictionary<string, string[]>();
        try
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            if (body.Length > 0 && body.TrimStart().StartsWith('{'))
            {
                using var doc = JsonDocument.Parse(body);
                var root = doc.RootElement;
                title = root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                detail = root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                // The transactional API's own shape: {"error": {"message": ...}}.
                if (detail is null && root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
                    && e.TryGetProperty("message", out var m))
                {
                    detail = m.GetString();
                }
                if (root.TryGetProperty("errors", out var errs) && errs.ValueKind == JsonValueKind.Object)
                {
                    foreach (var field in errs.EnumerateObject())
                    {
                        errors[field.Name] = field.Value.ValueKind == JsonValueKind.Array
                            ? field.Value.EnumerateArray().Select(v => v.ToString()).ToArray()
                            : [field.Value.ToString()];
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Not a problem document: the status says enough.
        }
        return new ApiException(response.StatusCode, title, detail, errors);
    }
}
