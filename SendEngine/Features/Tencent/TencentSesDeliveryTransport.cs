using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using MimeKit;
using SendEngine.Features.Delivery;

namespace SendEngine.Features.Tencent;

/// <summary>
/// Delivery through Tencent Cloud SES's SendEmail API (version 2020-10-02), one call per recipient, signed with
/// TC3-HMAC-SHA256. The MessageId Tencent returns becomes the recipient's message_id, which the webhook's bulkId names.
/// Within one call, the resilience handler (EmailEventsExtensions) retries only 429/503 and connections that never
/// carried the request (DNS, connect, TLS); other 5xx (502, 504…) and a 429/503 left after those retries come back
/// as transient, for the runner's own backoff. API errors are mapped
/// to transient (throttling, internal errors, quota, credentials) or permanent (everything else: bad address,
/// unverified sender, content rejected…) with Tencent's code and message as the recorded detail.
/// </summary>
public sealed partial class TencentSesDeliveryTransport(IHttpClientFactory httpFactory, IOptionsMonitor<TencentSesOptions> options,
    TimeProvider clock, ILogger<TencentSesDeliveryTransport> logger) : IDeliveryTransport
{
    private readonly IHttpClientFactory _httpFactory = httpFactory;
    private readonly IOptionsMonitor<TencentSesOptions> _options = options;
    private readonly TimeProvider _clock = clock;
    private readonly ILogger _logger = logger;

    public const string TransportName = "tencent";
    public const string HttpClientName = "tencent-ses";
    public const string Action = "SendEmail";
    public const string Version = "2020-10-02";

    public string Name => TransportName;

    public IDeliverySession OpenSession() => new Session(this);

    /// <summary>The SendEmail request body for a composed message (PascalCase, as the API expects).</summary>
    public static string BuildPayload(MimeMessage message, TencentSesOptions o)
    {
        var from = o.FromAddress is { Length: > 0 } f ? f
            : message.From.Mailboxes.FirstOrDefault() is { } m
                ? (string.IsNullOrEmpty(m.Name) ? m.Address : $"{m.Name.Replace(":", " ", StringComparison.Ordinal)} <{m.Address}>")
                : throw new FormatException("The message has no From address.");
        var to = new JsonArray(message.To.Mailboxes.Select(x => (JsonNode)JsonValue.Create(x.Address)!).ToArray());
        if (to.Count == 0)
        {
            throw new FormatException("The message has no recipient.");
        }
        var simple = new JsonObject();
        var (html, text) = message.Body is PrerenderedBody prerendered ? (prerendered.Html, prerendered.Text) : (message.HtmlBody, message.TextBody);
        if (html is not null)
        {
            simple["Html"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(html));
        }
        if (text is not null)
        {
            simple["Text"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
        }
        var body = new JsonObject
        {
            ["FromEmailAddress"] = from,
            ["Destination"] = to,
            ["Subject"] = message.Subject ?? "",
            ["Simple"] = simple,
        };
        if (message.ReplyTo.Mailboxes.FirstOrDefault() is { } replyTo)
        {
            body["ReplyToAddresses"] = replyTo.Address;
        }
        // Our Message-ID and the RFC 8058 unsubscribe headers travel as SMTP headers Tencent adds to the message
        // (SmtpHeaders is a JSON object of header name to value, passed as a string).
        if (!string.IsNullOrEmpty(message.MessageId))
        {
            body["SmtpMessageId"] = "<" + message.MessageId + ">";
        }
        var headers = new JsonObject();
        foreach (var id in (ReadOnlySpan<HeaderId>)[HeaderId.ListUnsubscribe, HeaderId.ListUnsubscribePost])
        {
            if (message.Headers[id] is { Length: > 0 } value)
            {
                headers[id.ToHeaderName()] = value.Trim();
            }
        }
        if (headers.Count > 0)
        {
            body["SmtpHeaders"] = headers.ToJsonString();
        }
        if (o.Unsubscribe is { Length: > 0 } unsubscribe)
        {
            body["Unsubscribe"] = unsubscribe;
        }
        if (o.TriggerType is { } trigger)
        {
            body["TriggerType"] = trigger;
        }
        return body.ToJsonString();
    }

    /// <summary>A failure to reach Tencent at all (DNS, connect, TLS): the request was never sent, so it is safe to retry.</summary>
    public static bool NeverSent(HttpRequestException ex) =>
        ex.HttpRequestError is HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError or HttpRequestError.SecureConnectionError;

    /// <summary>Throttling, Tencent-side failures, quotas and credential problems are worth retrying later; the rest is final.</summary>
    public static bool IsTransient(string code) =>
        code.StartsWith("RequestLimitExceeded", StringComparison.Ordinal)
        || code.StartsWith("InternalError", StringComparison.Ordinal)
        || code.StartsWith("LimitExceeded", StringComparison.Ordinal)
        || code.StartsWith("ResourceUnavailable", StringComparison.Ordinal)
        || code.StartsWith("AuthFailure", StringComparison.Ordinal)
        || code.StartsWith("UnauthorizedOperation", StringComparison.Ordinal)
        || code is "FailedOperation.FrequencyLimit" or "FailedOperation.ExceedSendLimit" or "FailedOperation.ServiceNotAvailable"
            or "FailedOperation.InsufficientQuota" or "FailedOperation.InsufficientBalance";

    private sealed class Session(TencentSesDeliveryTransport owner) : IDeliverySession
    {
        private readonly HttpClient _http = owner._httpFactory.CreateClient(HttpClientName);

        public async Task<DeliveryResult> SendAsync(MimeMessage message, CancellationToken ct)
        {
            var o = owner._options.CurrentValue;
            if (string.IsNullOrEmpty(o.SecretId) || string.IsNullOrEmpty(o.SecretKey))
            {
                return new DeliveryResult(DeliveryOutcome.Misconfigured, "Tencent SES is not configured (TencentSes:SecretId / SecretKey)");
            }
            var payload = BuildPayload(message, o);
            var endpoint = new Uri(o.Endpoint);
            var timestamp = owner._clock.GetUtcNow().ToUnixTimeSeconds();
            var signature = Tc3Signer.Sign(o.SecretId, o.SecretKey, o.Service, endpoint.Authority, timestamp, payload);
            using var request = new HttpRequestMessage(HttpMethod.Post, endpoint)
            {
                Content = new ByteArrayContent(Encoding.UTF8.GetBytes(payload)),
            };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", Tc3Signer.JsonContentType);
            request.Headers.TryAddWithoutValidation("Authorization", signature.Authorization);
            request.Headers.Add("X-TC-Action", Action);
            request.Headers.Add("X-TC-Version", Version);
            request.Headers.Add("X-TC-Timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add("X-TC-Region", o.Region);
            try
            {
                using var response = await _http.SendAsync(request, ct);
                var text = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode)
                {
                    var status = (int)response.StatusCode;
                    var detail = $"Tencent SES HTTP {status}: {Snippet(text)}";
                    return new DeliveryResult(status >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests
                        ? DeliveryOutcome.Unavailable : DeliveryOutcome.Rejected, detail);
                }
                return Interpret(text);
            }
            catch (HttpRequestException ex) when (NeverSent(ex))
            {
                LogCallFailed(owner._logger, ex.Message);
                return new DeliveryResult(DeliveryOutcome.Unavailable, "Tencent SES unreachable: " + ex.Message);
            }
            catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !ct.IsCancellationRequested)
                                       // Polly's timeout (the name: two Polly assemblies define the type here).
                                       || ex.GetType().FullName == "Polly.Timeout.TimeoutRejectedException")
            {
                // The request went out and no answer came back: Tencent may have accepted it. Like a runner that stops
                // mid-transaction, it is recorded as failed rather than risk mailing the recipient twice.
                LogCallFailed(owner._logger, ex.Message);
                return new DeliveryResult(DeliveryOutcome.Unknown, "outcome unknown: Tencent SES did not answer (" + ex.Message + "); not retried to avoid a duplicate");
            }
        }

        private static DeliveryResult Interpret(string text)
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                return new DeliveryResult(DeliveryOutcome.Deferred, "Tencent SES answered something that is not JSON: " + Snippet(text));
            }
            try
            {
                return Interpret(root?["Response"], text);
            }
            catch (InvalidOperationException)
            {
                // JsonNode throws this for a shape we did not expect (an array, a number where a string belongs). The
                // call was answered 200, so Tencent may have sent it: final, like other permanent errors, not retried.
                return new DeliveryResult(DeliveryOutcome.Rejected, "Tencent SES answered in an unexpected shape: " + Snippet(text));
            }
        }

        private static DeliveryResult Interpret(JsonNode? root, string text)
        {
            var requestId = root?["RequestId"]?.GetValue<string>();
            if (root?["Error"] is { } error)
            {
                var code = error["Code"]?.GetValue<string>() ?? "Unknown";
                var msg = error["Message"]?.GetValue<string>() ?? "";
                return new DeliveryResult(IsTransient(code) ? DeliveryOutcome.Unavailable : DeliveryOutcome.Rejected,
                    $"Tencent SES {code}: {msg} (RequestId {requestId})");
            }
            if (root?["MessageId"]?.GetValue<string>() is { Length: > 0 } messageId)
            {
                return new DeliveryResult(DeliveryOutcome.Sent, $"Tencent SES accepted (RequestId {requestId})", messageId);
            }
            return new DeliveryResult(DeliveryOutcome.Deferred, "Tencent SES answered without MessageId or Error: " + Snippet(text));
        }

        private static string Snippet(string s) => s.Length > 500 ? s[..500] : s;

        public ValueTask DisposeAsync()
        {
            _http.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    [LoggerMessage(LogLevel.Warning, "Tencent SES call failed: {Error}")]
    private static partial void LogCallFailed(ILogger logger, string error);
}
