using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Newsletter.Contracts;

namespace SendEngine.Composition;

/// <summary>
/// Mints a job's stateless unsubscribe links with the derived key Member Center handed out for (tenant, list, key id,
/// issued_at) (<c>POST /internal/lists/{list_id}/link-key</c>, docs/internal-api.md "Unsubscribe link tokens"):
/// <c>{unsubscribe_url_prefix}u1.{key_id}.{issued_at}.{list_id:N}.{subscriber_id:N}.{mac}</c>, with
/// <c>mac = base64url(HMAC-SHA256(key, "{subscriber_id:D}")[..16])</c>. Nothing is stored: a restarted Send Engine asks
/// for the same key again with key_id and issued_at. Runs per message, so one string is its only allocation, and the
/// HMAC contexts are keyed once and reused: the one-shot <c>HMACSHA256.HashData</c> sets up an OpenSSL context and
/// the key on every call (3.0 µs against 1.2 µs per link).
/// </summary>
public sealed class UnsubscribeLinks
{
    private const int GuidHexLength = 32;
    private const int MacLength = 16;
    private const int MacChars = 22; // base64url of 16 bytes, no padding

    private readonly byte[] _key;
    /// <summary>Keyed HMAC contexts, one per worker sending at the same time (an <see cref="IncrementalHash"/> is not thread-safe).</summary>
    private readonly ConcurrentBag<IncrementalHash> _macs = [];
    private readonly string _prefix; // "{url prefix}u1.{key_id}.{issued_at}.{list_id:N}."

    public UnsubscribeLinks(LinkKeyResponse key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = Base64Url.DecodeFromChars(key.Key);
        if (_key.Length != 32)
        {
            throw new ArgumentException("The link key must be 32 bytes (base64url).", nameof(key));
        }
        ListId = Guid.Parse(key.ListId);
        KeyId = key.KeyId;
        IssuedAt = key.IssuedAt;
        ExpiresAt = key.ExpiresAt;
        PostalAddress = string.IsNullOrWhiteSpace(key.PostalAddress) ? null : key.PostalAddress;
        Footer = key.Footer;
        _prefix = string.Create(CultureInfo.InvariantCulture, $"{key.UnsubscribeUrlPrefix}u1.{key.KeyId}.{key.IssuedAt}.{ListId:N}.");
    }

    /// <summary>
    /// The tenant's postal address as Member Center answered it with the key (null: none): the run's footer, so the job
    /// reads it once per run with the data it fetches anyway.
    /// </summary>
    public string? PostalAddress { get; }

    /// <summary>The list's branded footer as Member Center answered it with the key (<see cref="BulkFooter"/>).</summary>
    public MailFooter? Footer { get; }

    /// <summary>The list the key was derived for: links of another list would not verify.</summary>
    public Guid ListId { get; }
    public string KeyId { get; }
    /// <summary>Unix seconds; with <see cref="KeyId"/>, what re-derives this key after a restart.</summary>
    public long IssuedAt { get; }
    /// <summary>When links minted here stop working.</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>The unsubscribe URL of one recipient (page, form and RFC 8058 one-click all use it).</summary>
    public string UrlFor(Guid listId, Guid subscriberId)
    {
        if (listId != ListId)
        {
            throw new ArgumentException($"This key was derived for list {ListId}, not {listId}.", nameof(listId));
        }
        if (!_macs.TryTake(out var hmac))
        {
            hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        }
        try
        {
            return string.Create(_prefix.Length + GuidHexLength + 1 + MacChars, (this, subscriberId, hmac), static (span, state) =>
            {
                var (self, subscriberId, hmac) = state;
                self._prefix.CopyTo(span);
                var rest = span[self._prefix.Length..];
                subscriberId.TryFormat(rest, out var written, "N");
                rest[written] = '.';
                Span<byte> id = stackalloc byte[36];
                subscriberId.TryFormat(id, out _, "D");
                Span<byte> mac = stackalloc byte[32];
                hmac.AppendData(id);
                hmac.GetHashAndReset(mac);
                Base64Url.EncodeToChars(mac[..MacLength], rest[(written + 1)..]);
            });
        }
        finally
        {
            _macs.Add(hmac);
        }
    }
}
