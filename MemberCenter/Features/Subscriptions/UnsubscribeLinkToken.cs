using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// Stateless unsubscribe tokens (docs/internal-api.md, "Unsubscribe link tokens"):
/// <c>u1.{key_id}.{issued_at}.{list_id:N}.{subscriber_id:N}.{mac}</c> where
/// <c>K_link = HMAC-SHA256(K_root[key_id], "unsubscribe-link|{tenant_id:D}|{list_id:D}|{issued_at}")</c> and
/// <c>mac = base64url(HMAC-SHA256(K_link, "{subscriber_id:D}")[..16])</c>. Send Engine mints the same format with the
/// derived key it gets from <c>POST /internal/lists/{list_id}/link-key</c>; it never sees the root key.
/// </summary>
public static class UnsubscribeLinkToken
{
    public const string Version = "u1";
    public const int MacBytes = 16;
    public const int MaxLength = 200;
    private const int GuidHex = 32;

    public readonly record struct Parsed(string KeyId, long IssuedAt, Guid ListId, Guid SubscriberId, byte[] Mac);

    /// <summary>The per-(tenant, list, key, issued_at) key Send Engine receives.</summary>
    public static byte[] DeriveLinkKey(ReadOnlySpan<byte> rootKey, Guid tenantId, Guid listId, long issuedAt) =>
        HMACSHA256.HashData(rootKey, Encoding.ASCII.GetBytes(
            string.Create(CultureInfo.InvariantCulture, $"unsubscribe-link|{tenantId:D}|{listId:D}|{issuedAt}")));

    public static byte[] Mac(ReadOnlySpan<byte> linkKey, Guid subscriberId)
    {
        Span<byte> id = stackalloc byte[36];
        subscriberId.TryFormat(id, out _, "D");
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(linkKey, id, full);
        return full[..MacBytes].ToArray();
    }

    public static string Format(string keyId, long issuedAt, Guid listId, Guid subscriberId, ReadOnlySpan<byte> linkKey) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{Version}.{keyId}.{issuedAt}.{listId:N}.{subscriberId:N}.{Base64Url.EncodeToString(Mac(linkKey, subscriberId))}");

    /// <summary>True when <paramref name="token"/> has the shape of a stateless token (its MAC is not checked here).</summary>
    public static bool TryParse(string? token, out Parsed parsed)
    {
        parsed = default;
        if (token is null || token.Length > MaxLength || !token.StartsWith(Version + ".", StringComparison.Ordinal))
        {
            return false;
        }
        var parts = token.Split('.');
        if (parts.Length != 6 || !LinkKeyRing.IsKeyId(parts[1])
            || parts[2].Length is 0 or > 12 || !parts[2].All(char.IsAsciiDigit) || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var issuedAt)
            || parts[3].Length != GuidHex || !IsLowerHex(parts[3]) || !Guid.TryParseExact(parts[3], "N", out var listId)
            || parts[4].Length != GuidHex || !IsLowerHex(parts[4]) || !Guid.TryParseExact(parts[4], "N", out var subscriberId)
            || parts[5].Length != 22)
        {
            return false;
        }
        var mac = new byte[MacBytes];
        if (Base64Url.DecodeFromChars(parts[5], mac, out var consumed, out var written) != System.Buffers.OperationStatus.Done
            || consumed != 22 || written != MacBytes)
        {
            return false;
        }
        parsed = new Parsed(parts[1], issuedAt, listId, subscriberId, mac);
        return true;
    }

    private static bool IsLowerHex(string s) => s.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');
}
