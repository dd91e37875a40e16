using System.Text;
using Newsletter.Contracts.Webhooks;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Features.WebhookGateway;

/// <summary>Turns a webhook request into its log entry: headers with secrets cut to a prefix, the body capped.</summary>
public static class GatewayRecorder
{
    public const string WebhookSource = "tencent_webhook";
    public const string TestSource = "test_console";
    public const string ImapSource = "imap";

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

    /// <summary>Headers as "Name: value" lines, the stored form: HTTP header values hold no line breaks, and plain text
    /// costs PostgreSQL nothing to store (jsonb would be parsed and re-encoded per request).</summary>
    public static string FormatHeaders(IEnumerable<KeyValuePair<string, string>> headers)
    {
        var sb = new StringBuilder();
        foreach (var (name, value) in headers)
        {
            if (sb.Length > 0)
            {
                sb.Append('\n');
            }
            // Folded or odd values (mail headers) keep to one line.
            sb.Append(name).Append(": ").Append(value.ReplaceLineEndings(" "));
        }
        return sb.ToString().Replace('\0', '\uFFFD');
    }

    public static Dictionary<string, string> ParseHeaders(string stored)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in stored.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = line.IndexOf(": ", StringComparison.Ordinal);
            var (name, value) = colon < 0 ? (line, "") : (line[..colon], line[(colon + 2)..]);
            // A repeated name (mail's Received:) keeps every value.
            result[name] = result.TryGetValue(name, out var earlier) ? earlier + "\n" + value : value;
        }
        return result;
    }

    public static GatewayEntry Create(HttpRequest request, ReadOnlySpan<byte> body, long declaredLength, WebhookOptions webhook,
        WebhookGatewayOptions options, DateTimeOffset now)
    {
        var headers = request.Headers.Select(h => KeyValuePair.Create(h.Key,
            IsSecret(h.Key, webhook.TokenHeader) ? Redact(h.Value.ToString()) : h.Value.ToString()));
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
            Headers = FormatHeaders(headers),
            Body = text,
            BodyTruncated = body.Length > max || declaredLength > body.Length,
            Verification = GatewayVerifications.Ok,
            StatusCode = 200,
        };
    }

    /// <summary>The entry of a bounce or feedback report read over IMAP: the message's headers (each value cut to 1,000
    /// characters), the parsed result as the body (the events' payloads, so not stored twice), method IMAP and the path
    /// mailbox/uidvalidity/uid. It goes through the same writer as the webhook's entries, off the webhook's path.</summary>
    public static GatewayEntry CreateImap(string mailboxKey, long uidValidity, long uid, IEnumerable<KeyValuePair<string, string>> headers,
        IReadOnlyList<ParsedEmailEvent> events, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        ReceivedAt = now,
        Source = ImapSource,
        Method = "IMAP",
        Path = $"{mailboxKey}/{uidValidity}/{uid}",
        Headers = FormatHeaders(headers.Select(h => KeyValuePair.Create(h.Key, h.Value.Length > 1000 ? h.Value[..1000] + "…" : h.Value))),
        Body = events.Count == 1 ? events[0].Payload : "[" + string.Join(",", events.Select(e => e.Payload)) + "]",
        Verification = GatewayVerifications.Mailbox,
        StatusCode = 200,
        Events = events.Count,
        EventTypes = [.. events.Select(e => e.EventType)],
    };
}
