using System.Text;
using System.Text.Json;
using Newsletter.Contracts.Webhooks;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Features.WebhookGateway;

/// <summary>Turns a webhook request into its log entry: headers with secrets cut to a prefix, the body capped.</summary>
public static class GatewayRecorder
{
    public const string WebhookSource = "tencent_webhook";
    public const string TestSource = "test_console";

    /// <summary>The header the test console adds so that its entry is found; the webhook's answer names the entry in it.</summary>
    public const string EntryHeader = "Webhook-Gateway-Entry";
    public const string SourceHeader = "Webhook-Gateway-Source";

    private const int SecretPrefix = 4;

    /// <summary>Headers whose values are credentials: only a prefix is kept (enough to tell which secret was used).</summary>
    private static readonly HashSet<string> SecretHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Proxy-Authorization", "Cookie", WebhookAuthenticator.SignatureHeader, WebhookAuthenticator.TokenHeader, "X-Webhook-Token",
    };

    public static bool IsSecret(string header, string? tokenHeader) =>
        SecretHeaders.Contains(header) || (!string.IsNullOrEmpty(tokenHeader) && header.Equals(tokenHeader, StringComparison.OrdinalIgnoreCase));

    public static string Redact(string value) =>
        value.Length <= SecretPrefix ? "…(redacted)" : value[..SecretPrefix] + $"…(redacted, {value.Length} characters)";

    public static Dictionary<string, string> RedactHeaders(IEnumerable<KeyValuePair<string, string>> headers, string? tokenHeader)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in headers)
        {
            result[name] = IsSecret(name, tokenHeader) ? Redact(value) : value;
        }
        return result;
    }

    public static GatewayEntry Create(HttpRequest request, ReadOnlySpan<byte> body, long declaredLength, WebhookOptions webhook,
        WebhookGatewayOptions options, DateTimeOffset now)
    {
        var headers = RedactHeaders(request.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToString())), webhook.TokenHeader);
        var max = options.MaxBodyBytes;
        var kept = body.Length > max ? body[..max] : body;
        // Never cut a UTF-8 sequence in half; invalid bytes become U+FFFD, and NUL (which PostgreSQL text refuses) too.
        var text = Encoding.UTF8.GetString(kept).Replace('\0', '\uFFFD');
        var source = request.Headers.TryGetValue(SourceHeader, out var s) && s.ToString() == TestSource ? TestSource : WebhookSource;
        return new GatewayEntry
        {
            Id = Guid.CreateVersion7(now),
            ReceivedAt = now,
            Source = source,
            Method = request.Method,
            Path = request.Path.Value + WebhookApi.RedactedQuery(request, webhook.TokenQueryParameter),
            Headers = JsonSerializer.Serialize(headers),
            Body = text,
            BodyTruncated = body.Length > max || declaredLength > body.Length,
            Verification = GatewayVerifications.Ok,
            StatusCode = 200,
        };
    }
}
