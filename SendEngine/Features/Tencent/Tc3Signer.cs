using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace SendEngine.Features.Tencent;

/// <summary>
/// TencentCloud API signature v3 (TC3-HMAC-SHA256) for a POST with a JSON body, signing content-type and host — the
/// exact steps of Tencent's "Signature v3" page (CanonicalRequest → StringToSign → derived key → Authorization).
/// </summary>
public static class Tc3Signer
{
    public const string Algorithm = "TC3-HMAC-SHA256";
    public const string JsonContentType = "application/json; charset=utf-8";
    public const string SignedHeaders = "content-type;host";

    public sealed record Signature(string CanonicalRequest, string StringToSign, string CredentialScope, string Value, string Authorization);

    public static Signature Sign(string secretId, string secretKey, string service, string host, long timestamp, string payload,
        string contentType = JsonContentType)
    {
        var canonicalRequest = string.Join('\n',
            "POST",
            "/",
            "",
            $"content-type:{contentType.Trim().ToLowerInvariant()}\nhost:{host.Trim().ToLowerInvariant()}\n",
            SignedHeaders,
            Sha256Hex(payload));
        var date = DateTimeOffset.FromUnixTimeSeconds(timestamp).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var scope = $"{date}/{service}/tc3_request";
        var stringToSign = string.Join('\n', Algorithm, timestamp.ToString(CultureInfo.InvariantCulture), scope, Sha256Hex(canonicalRequest));
        var secretDate = Hmac(Encoding.UTF8.GetBytes("TC3" + secretKey), date);
        var secretService = Hmac(secretDate, service);
        var secretSigning = Hmac(secretService, "tc3_request");
        var signature = Convert.ToHexStringLower(Hmac(secretSigning, stringToSign));
        var authorization = $"{Algorithm} Credential={secretId}/{scope}, SignedHeaders={SignedHeaders}, Signature={signature}";
        return new Signature(canonicalRequest, stringToSign, scope, signature, authorization);
    }

    public static string Sha256Hex(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    private static byte[] Hmac(byte[] key, string message) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(message));
}
