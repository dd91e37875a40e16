using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// Confirm and unsubscribe tokens: 256 bits from the CSPRNG, base64url. Only SHA-256 of a token is stored and
/// looked up; a fast hash is enough for random 256-bit values (no dictionary to attack), and lookup by hash
/// means no secret is ever compared byte by byte.
/// </summary>
public static class SubscriptionTokens
{
    private const int TokenBytes = 32;
    private const int TokenLength = 43; // base64url of 32 bytes, no padding

    public static (string Token, byte[] Hash) New()
    {
        var token = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(TokenBytes));
        return (token, Hash(token));
    }

    public static byte[] Hash(string token) => SHA256.HashData(Encoding.ASCII.GetBytes(token));

    /// <summary>False for anything that cannot be a token, so garbage never reaches the database.</summary>
    public static bool IsWellFormed(string? token) =>
        token is { Length: TokenLength } && token.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
}
