using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Webhooks;
using Npgsql;
using SendEngine.Data;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The gateway's test console: a sample callback of one type, signed as the webhook is configured to verify
/// (TencentSes:Webhook), POSTed over HTTP to this Send Engine's own webhook route, so it takes the real path: verification,
/// parsing, the writer, the log, the processor. Its message id names the tenant (<see cref="MessagePrefix"/>) instead of a
/// real message: the processor attributes it to that tenant and records outcome "test" without touching any reader,
/// message or statistic. (Whoever can post authentic callbacks could add such entries to any tenant's log; they can
/// already do far more with real message ids.)
/// </summary>
public sealed class GatewayTestEvents(IHttpClientFactory http, IServer server, IOptionsMonitor<WebhookOptions> webhook,
    IOptions<WebhookGatewayOptions> options, NpgsqlDataSource db, TimeProvider clock)
{
    public const string HttpClientName = "webhook-gateway-self";
    public const string MessagePrefix = "gateway-test.";
    public const string TestOutcome = "test";
    public const string HeldOutcome = "held";
    public const string SampleEmail = "gateway-test@example.com";

    /// <summary>The tenant a test message id names, or null for any other id.</summary>
    public static Guid? TenantOf(string messageId) =>
        messageId.StartsWith(MessagePrefix, StringComparison.Ordinal) && messageId.Length >= MessagePrefix.Length + 32
        && Guid.TryParseExact(messageId.AsSpan(MessagePrefix.Length, 32), "N", out var tenant) ? tenant : null;

    public async Task<GatewayTestEventResponse> SendAsync(Guid tenantId, string type, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var body = JsonSerializer.Serialize(Sample(tenantId, type, now));
        var bytes = Encoding.UTF8.GetBytes(body);
        var o = webhook.CurrentValue;
        var url = new Uri(BaseUrl(), WebhookApi.Path.TrimStart('/'));
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.Add(GatewayRecorder.SourceHeader, GatewayRecorder.TestSource);
        switch (o.Verification)
        {
            case WebhookVerification.Signature:
            {
                var timestamp = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
                var token = o.ExpectedToken ?? "gateway-test";
                request.Headers.Add(WebhookAuthenticator.TimestampHeader, timestamp);
                request.Headers.Add(WebhookAuthenticator.TokenHeader, token);
                request.Headers.Add(WebhookAuthenticator.SignatureHeader,
                    Convert.ToHexStringLower(WebhookAuthenticator.Compute(o.SigningKey!, timestamp, token, bytes)));
                break;
            }
            case WebhookVerification.Token when !string.IsNullOrEmpty(o.TokenHeader):
                request.Headers.Add(o.TokenHeader, o.SecretToken);
                break;
            case WebhookVerification.Token:
                request.RequestUri = new Uri(url + "?" + Uri.EscapeDataString(o.TokenQueryParameter!) + "=" + Uri.EscapeDataString(o.SecretToken!));
                break;
        }
        var sentHeaders = request.Headers.Concat(request.Content.Headers).Select(h => KeyValuePair.Create(h.Key, string.Join(", ", h.Value)));
        var shownUrl = url.ToString() + (request.RequestUri!.Query.Length > 0 ? $"?{o.TokenQueryParameter}={WebhookApi.Redacted}" : "");
        var shownRequest = new GatewayHttpRequest("POST", shownUrl, GatewayRecorder.RedactHeaders(sentHeaders, o.TokenHeader), body);

        using var client = http.CreateClient(HttpClientName);
        using var response = await client.SendAsync(request, ct);
        var answer = await response.Content.ReadAsStringAsync(ct);
        var headers = response.Headers.Concat(response.Content.Headers)
            .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        var entryId = headers.GetValueOrDefault(GatewayRecorder.EntryHeader);
        string? outcome = null;
        if (response.IsSuccessStatusCode && Guid.TryParse(entryId, out var entry))
        {
            outcome = await WaitForOutcomeAsync(entry, ct);
        }
        return new GatewayTestEventResponse(type, shownRequest, new GatewayHttpResponse((int)response.StatusCode, headers, answer), entryId, outcome);
    }

    /// <summary>The processor's outcome for the entry's event, or null when it has not come within the wait.</summary>
    private async Task<string?> WaitForOutcomeAsync(Guid entry, CancellationToken ct)
    {
        var until = clock.GetUtcNow() + options.Value.TestEventWait;
        while (true)
        {
            var outcome = await Sql.ScalarAsync<string>(db, """
                SELECT v.outcome FROM webhook_gateway_entries e
                JOIN email_events v ON v.id BETWEEN e.first_event_id AND e.last_event_id AND v.gateway_entry_id = e.id
                WHERE e.id = $1 LIMIT 1
                """, ct, entry);
            if (outcome is not null || clock.GetUtcNow() >= until)
            {
                return outcome;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), clock, ct);
        }
    }

    private Uri BaseUrl()
    {
        var configured = options.Value.SelfUrl;
        if (string.IsNullOrEmpty(configured))
        {
            var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? throw new InvalidOperationException("WebhookGateway:SelfUrl is not set and the server reports no address.");
            // A wildcard listener is reached on loopback.
            configured = address.Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal)
                .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal).Replace("://[::]", "://[::1]", StringComparison.Ordinal);
        }
        return new Uri(configured.TrimEnd('/') + "/");
    }

    /// <summary>A spec 001 callback of the type, for a message of the tenant's that does not exist.</summary>
    public static Dictionary<string, object> Sample(Guid tenantId, string type, DateTimeOffset now)
    {
        var e = new Dictionary<string, object>
        {
            ["eventType"] = type switch
            {
                GatewayTestEventTypes.HardBounce or GatewayTestEventTypes.SoftBounce => "bounce",
                GatewayTestEventTypes.Rejected => "reject",
                _ => type,
            },
            ["messageId"] = MessagePrefix + tenantId.ToString("N") + "." + Guid.NewGuid().ToString("N")[..12],
            ["email"] = SampleEmail,
            ["timestamp"] = now.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        };
        switch (type)
        {
            case GatewayTestEventTypes.HardBounce:
                e["bounceType"] = "Permanent";
                e["bounceSubType"] = "General";
                e["reason"] = "550 5.1.1 user unknown (test event)";
                break;
            case GatewayTestEventTypes.SoftBounce:
                e["bounceType"] = "Transient";
                e["bounceSubType"] = "MailboxFull";
                e["reason"] = "452 4.2.2 mailbox full (test event)";
                break;
            case GatewayTestEventTypes.Rejected:
                e["reason"] = "rejected (test event)";
                break;
            case GatewayTestEventTypes.Open:
                e["userAgent"] = "Mozilla/5.0 (test event)";
                e["ipAddress"] = "192.0.2.1";
                break;
            case GatewayTestEventTypes.Click:
                e["link"] = "https://example.com/test-event";
                e["userAgent"] = "Mozilla/5.0 (test event)";
                break;
        }
        return e;
    }
}
