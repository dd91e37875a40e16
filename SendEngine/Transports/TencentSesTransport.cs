using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using SendEngine.Features.Tencent;

namespace SendEngine.Transports;

/// <summary>
/// Delivery through Tencent Cloud SES's SendEmail API (version 2020-10-02), one call per recipient, signed with
/// TC3-HMAC-SHA256, its payload built from the message's parts. The MessageId Tencent returns becomes the recipient's
/// message_id, which the webhook's bulkId names. Within one call, the resilience handler (EmailEventsExtensions)
/// retries only 429/503 and connections that never carried the request (DNS, connect, TLS). What is left maps to a
/// <see cref="DeliveryOutcome"/> (<see cref="Classify"/>, docs/send-engine.md "Transports"): a request that went out
/// and got no usable answer is <see cref="DeliveryOutcome.Unknown"/>, never sent again.
/// </summary>
public sealed partial class TencentSesTransport(IHttpClientFactory httpFactory, IOptionsMonitor<TencentSesOptions> options,
    TimeProvider clock, ILogger<TencentSesTransport> logger) : ITransport
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

    public ITransportSession OpenSession() => new Session(this);

    /// <summary>The SendEmail request body for a message (PascalCase, as the API expects).</summary>
    public static string BuildPayload(OutgoingMessage message, TencentSesOptions o)
    {
        var from = o.FromAddress is { Length: > 0 } f ? f
            : string.IsNullOrEmpty(message.From.Name) ? message.From.Address
            : $"{message.From.Name.Replace(":", " ", StringComparison.Ordinal)} <{message.From.Address}>";
        if (string.IsNullOrWhiteSpace(message.To))
        {
            throw new FormatException("The message has no recipient.");
        }
        var simple = new JsonObject();
        if (message.HtmlBody is not null)
        {
            simple["Html"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(message.HtmlBody));
        }
        if (message.TextBody is not null)
        {
            simple["Text"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(message.TextBody));
        }
        var body = new JsonObject
        {
            ["FromEmailAddress"] = from,
            // The recipient and a bcc_address copy; Tencent's API has no To/Cc header of its own (preserve_recipients is SMTP's).
            ["Destination"] = new JsonArray([JsonValue.Create(message.To), .. message.EnvelopeBcc.Select(b => JsonValue.Create(b))]),
            ["Subject"] = message.Subject,
            ["Simple"] = simple,
        };
        if (message.Attachments.Count + message.InlineImages.Count > 0)
        {
            // Tencent takes files by name only: inline images travel as attachments.
            body["Attachments"] = new JsonArray([.. message.Attachments.Concat(message.InlineImages)
                .Select(f => (JsonNode)new JsonObject { ["FileName"] = f.Name, ["Content"] = Convert.ToBase64String(f.Content) })]);
        }
        if (message.ReplyTo is { Length: > 0 } replyTo)
        {
            body["ReplyToAddresses"] = replyTo;
        }
        // Our Message-ID and the extra headers (RFC 8058 unsubscribe) travel as SMTP headers Tencent adds to the
        // message (SmtpHeaders is a JSON object of header name to value, passed as a string).
        if (!string.IsNullOrEmpty(message.MessageId))
        {
            body["SmtpMessageId"] = "<" + message.MessageId + ">";
        }
        if (message.Headers.Count > 0)
        {
            var headers = new JsonObject();
            foreach (var h in message.Headers)
            {
                headers[h.Name] = h.Value.Trim();
            }
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

    /// <summary>
    /// The outcome of an API error code: per-recipient throttling is <see cref="DeliveryOutcome.Deferred"/>; API rate
    /// limits, Tencent-side failures and daily limits <see cref="DeliveryOutcome.Unavailable"/> (they heal); credentials,
    /// permissions, an unverified sender, quota and balance <see cref="DeliveryOutcome.Misconfigured"/> (an operator has
    /// to act); everything else (bad address, blacklisted recipient, content refused…) <see cref="DeliveryOutcome.Rejected"/>.
    /// </summary>
    public static DeliveryOutcome Classify(string code) =>
        code is "FailedOperation.FrequencyLimit" ? DeliveryOutcome.Deferred
        : code.StartsWith("RequestLimitExceeded", StringComparison.Ordinal)
          || code.StartsWith("InternalError", StringComparison.Ordinal)
          || code.StartsWith("LimitExceeded", StringComparison.Ordinal)
          || code.StartsWith("ResourceUnavailable", StringComparison.Ordinal)
          || code is "FailedOperation.ServiceNotAvailable" or "FailedOperation.ExceedSendLimit" ? DeliveryOutcome.Unavailable
        : code.StartsWith("AuthFailure", StringComparison.Ordinal)
          || code.StartsWith("UnauthorizedOperation", StringComparison.Ordinal)
          || code.StartsWith("OperationDenied", StringComparison.Ordinal)
          || code is "FailedOperation.InsufficientQuota" or "FailedOperation.InsufficientBalance"
          || (code.StartsWith("FailedOperation.", StringComparison.Ordinal) && code.Contains("Sender", StringComparison.Ordinal))
            ? DeliveryOutcome.Misconfigured
        : DeliveryOutcome.Rejected;

    private sealed class Session(TencentSesTransport owner) : ITransportSession
    {
        private readonly HttpClient _http = owner._httpFactory.CreateClient(HttpClientName);

        public async Task<DeliveryResult> SendAsync(OutgoingMessage message, CancellationToken ct)
        {
            var o = owner._options.CurrentValue;
            if (string.IsNullOrEmpty(o.SecretId) || string.IsNullOrEmpty(o.SecretKey))
            {
                return new DeliveryResult(DeliveryOutcome.Misconfigured, "Tencent SES is not configured (TencentSes:SecretId / SecretKey)");
            }
            string payload;
            try
            {
                payload = BuildPayload(message, o);
            }
            catch (FormatException ex)
            {
                return new DeliveryResult(DeliveryOutcome.Rejected, "invalid message: " + ex.Message);
            }
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
                    // 5xx and 429 (left after the handler's retries): not processed, Tencent or the path to it is in
                    // trouble. 401/403: the credential. Other 4xx: this request.
                    return new DeliveryResult(status >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests ? DeliveryOutcome.Unavailable
                        : response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? DeliveryOutcome.Misconfigured
                        : DeliveryOutcome.Rejected, detail);
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
                // The request went out and no answer came back: Tencent may have accepted it, so it is not sent again.
                LogCallFailed(owner._logger, ex.Message);
                return DeliveryResult.Unknown("Tencent SES did not answer (" + ex.Message + ")");
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
                // Not the API's answer (a proxy's page, say): whatever answered did not pass the request on as JSON-speaking
                // Tencent would have, so it is treated as not processed.
                return new DeliveryResult(DeliveryOutcome.Unavailable, "Tencent SES answered something that is not JSON: " + Snippet(text));
            }
            try
            {
                return Interpret(root?["Response"], text);
            }
            catch (InvalidOperationException)
            {
                // JsonNode throws this for a shape we did not expect (an array, a number where a string belongs). The
                // call was answered 200, so Tencent may have sent it: not retried.
                return DeliveryResult.Unknown("Tencent SES answered in an unexpected shape: " + Snippet(text));
            }
        }

        private static DeliveryResult Interpret(JsonNode? root, string text)
        {
            var requestId = root?["RequestId"]?.GetValue<string>();
            if (root?["Error"] is { } error)
            {
                var code = error["Code"]?.GetValue<string>() ?? "Unknown";
                var msg = error["Message"]?.GetValue<string>() ?? "";
                return new DeliveryResult(Classify(code), $"Tencent SES {code}: {msg} (RequestId {requestId})");
            }
            if (root?["MessageId"]?.GetValue<string>() is { Length: > 0 } messageId)
            {
                return new DeliveryResult(DeliveryOutcome.Sent, $"Tencent SES accepted (RequestId {requestId})", messageId);
            }
            // Answered 200 with neither: it may have been accepted, so it is not sent again.
            return DeliveryResult.Unknown("Tencent SES answered without MessageId or Error: " + Snippet(text));
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
