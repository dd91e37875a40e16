using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Privacy;

namespace SendEngine.Composition;

/// <summary>What a VERP return path names: one bulk recipient row or one transactional task.</summary>
public readonly record struct ReturnPathTarget(long? RecipientId, Guid? TaskId);

/// <summary>
/// The per-message envelope sender (VERP): <c>b-r{recipient id}-{tag}@{bounce domain}</c> for a bulk recipient,
/// <c>b-t{task id, 32 hex}-{tag}@…</c> for a transactional task. A DSN comes back to that address, so it names the exact
/// message even when the reporting server quotes nothing of the original. The tag (10 base32 characters of an HMAC keyed
/// from <c>Privacy:AddressHashKey</c>, domain-separated) stops a forged bounce to a guessed id from suppressing an
/// address; everything is lower case because some relays fold the local part.
/// </summary>
public sealed class ReturnPath(IOptions<PrivacyOptions> options)
{
    private const string Prefix = "b-";
    private const int TagLength = 10;

    public string ForRecipient(long recipientId, string bounceDomain) => Address("r" + recipientId.ToString(System.Globalization.CultureInfo.InvariantCulture), bounceDomain);

    public string ForTask(Guid taskId, string bounceDomain) => Address("t" + taskId.ToString("N"), bounceDomain);

    /// <summary>Reads a VERP address (any domain; case-insensitive); false for anything else or a wrong tag.</summary>
    public bool TryParse(string? address, out ReturnPathTarget target)
    {
        target = default;
        if (address is null) return false;
        var at = address.LastIndexOf('@');
        var local = (at < 0 ? address : address[..at]).Trim().Trim('<').ToLowerInvariant();
        if (!local.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        var parts = local[Prefix.Length..].Split('-');
        if (parts.Length != 2 || parts[0].Length < 2) return false;
        var id = parts[0];
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Tag(id)), Encoding.ASCII.GetBytes(parts[1]))) return false;
        switch (id[0])
        {
            case 'r' when long.TryParse(id.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var recipientId):
                target = new ReturnPathTarget(recipientId, null);
                return true;
            case 't' when id.Length == 33 && Guid.TryParseExact(id[1..], "N", out var taskId):
                target = new ReturnPathTarget(null, taskId);
                return true;
            default:
                return false;
        }
    }

    private string Address(string id, string bounceDomain) => $"{Prefix}{id}-{Tag(id)}@{bounceDomain}";

    private string Tag(string id)
    {
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes("verp\0" + options.Value.AddressHashKey), Encoding.ASCII.GetBytes(id));
        return Base32(mac)[..TagLength];
    }

    private static string Base32(ReadOnlySpan<byte> data)
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        var sb = new StringBuilder((data.Length * 8 + 4) / 5);
        int buffer = 0, bits = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                sb.Append(alphabet[(buffer >> (bits - 5)) & 31]);
                bits -= 5;
            }
        }
        if (bits > 0) sb.Append(alphabet[(buffer << (5 - bits)) & 31]);
        return sb.ToString();
    }
}
