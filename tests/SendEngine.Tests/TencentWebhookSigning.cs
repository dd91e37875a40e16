using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace SendEngine.Tests;

/// <summary>
/// The Tencent SES webhook with signature verification, for tests that post callbacks to a Send Engine of their own:
/// its settings and signed requests, the signature computed here independently of the server's code.
/// </summary>
public static class TencentWebhookSigning
{
    /// <summary>The callback token the requests carry (part of what is signed).</summary>
    public const string Token = "tencent-callback";

    /// <summary>
    /// Signature verification with <paramref name="signingKey"/> (no unauthenticated callbacks) and an event processor
    /// that polls every 100 ms and does not wait for unknown messages; <paramref name="extra"/> wins.
    /// </summary>
    public static Dictionary<string, string?> Settings(string signingKey, IReadOnlyDictionary<string, string?>? extra = null)
    {
        var s = new Dictionary<string, string?>
        {
            ["TencentSes:Webhook:Verification"] = "Signature",
            ["TencentSes:Webhook:SigningKey"] = signingKey,
            ["TencentSes:Webhook:AllowUnauthenticated"] = "false",
            ["EmailEvents:PollInterval"] = "00:00:00.100",
            ["EmailEvents:UnknownMessageGrace"] = "00:00:00",
        };
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            s[k] = v;
        }
        return s;
    }

    /// <summary>HMAC-SHA256(key, "{timestamp}\n{token}\n{body}") as lower-case hex.</summary>
    public static string Sign(string key, string timestamp, string body) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes($"{timestamp}\n{Token}\n{body}")));

    /// <summary>
    /// A POST of <paramref name="body"/> to the webhook route signed with <paramref name="key"/> at
    /// <paramref name="timestamp"/> (now when null), or carrying <paramref name="signature"/> as given.
    /// </summary>
    public static HttpRequestMessage Request(string body, string key, long? timestamp = null, string? signature = null)
    {
        var ts = (timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds()).ToString(CultureInfo.InvariantCulture);
        var request = new HttpRequestMessage(HttpMethod.Post, "api/tencent/ses/webhook") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Tencent-Token", Token);
        request.Headers.Add("X-Tencent-Timestamp", ts);
        request.Headers.Add("X-Tencent-Signature", signature ?? Sign(key, ts, body));
        return request;
    }
}
