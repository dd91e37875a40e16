using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// Checks a callback before its body is parsed. Signature mode: HMAC-SHA256(SigningKey, "{X-Tencent-Timestamp}\n{X-Tencent-Token}\n{raw body}"),
/// lower- or upper-case hex in X-Tencent-Signature, timestamp within ±TimestampTolerance. Token mode: the secret in the
/// header, the query, or as the password of HTTP basic auth (what an HTTP client sends for a callback URL
/// https://user:secret@host/…: Tencent's callbacks carry no signature and no header we could choose). All comparisons
/// are constant-time.
/// </summary>
public sealed class WebhookAuthenticator(IOptionsMonitor<WebhookOptions> options, TimeProvider clock)
{
    public const string TokenHeader = "X-Tencent-Token";
    public const string TimestampHeader = "X-Tencent-Timestamp";
    public const string SignatureHeader = "X-Tencent-Signature";

    /// <summary>Null when authentic; otherwise the reason (a metric label and the problem detail).</summary>
    public string? Check(HttpRequest request, ReadOnlySpan<byte> body)
    {
        var o = options.CurrentValue;
        switch (o.Verification)
        {
            case WebhookVerification.None:
                return null;
            case WebhookVerification.Token:
            {
                var expected = Encoding.UTF8.GetBytes(o.SecretToken!);
                string? given = null;
                if (!string.IsNullOrEmpty(o.TokenHeader) && request.Headers.TryGetValue(o.TokenHeader, out var h))
                {
                    given = h.ToString();
                }
                else if (!string.IsNullOrEmpty(o.TokenQueryParameter) && request.Query.TryGetValue(o.TokenQueryParameter, out var q))
                {
                    given = q.ToString();
                }
                else if (BasicPassword(request) is { } password)
                {
                    given = password;
                }
                if (given is null)
                {
                    return "missing_token";
                }
                return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(expected))
                    ? null : "bad_token";
            }
            default:
            {
                var token = request.Headers[TokenHeader].ToString();
                var timestamp = request.Headers[TimestampHeader].ToString();
                var signature = request.Headers[SignatureHeader].ToString();
                if (timestamp.Length == 0 || signature.Length == 0)
                {
                    return "missing_signature";
                }
                if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                    || Math.Abs(clock.GetUtcNow().ToUnixTimeSeconds() - seconds) > (long)o.TimestampTolerance.TotalSeconds)
                {
                    return "stale_timestamp";
                }
                if (o.ExpectedToken is { Length: > 0 } expectedToken
                    && !CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(token)), SHA256.HashData(Encoding.UTF8.GetBytes(expectedToken))))
                {
                    return "bad_token";
                }
                byte[] given;
                try
                {
                    given = Convert.FromHexString(signature);
                }
                catch (FormatException)
                {
                    return "bad_signature";
                }
                var expected = Compute(o.SigningKey!, timestamp, token, body);
                return CryptographicOperations.FixedTimeEquals(given, expected) ? null : "bad_signature";
            }
        }
    }

    /// <summary>The password of an Authorization: Basic header (any user name), or null.</summary>
    private static string? BasicPassword(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? null : decoded[(colon + 1)..];
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>The signature a sender must put in X-Tencent-Signature (as hex).</summary>
    public static byte[] Compute(string key, string timestamp, string token, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp + "\n" + token + "\n");
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(key));
        hmac.AppendData(prefix);
        hmac.AppendData(body);
        return hmac.GetHashAndReset();
    }
}
