using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MimeKit;
using MimeKit.Cryptography;
using MimeKit.Utils;
using Newsletter.ServiceDefaults.Mail;

namespace SendEngine.Features.Delivery;

public sealed class DkimOptions
{
    public const string Section = "Dkim";

    /// <summary>The signing domain (d=); DKIM is on when Domain, Selector and a key are set.</summary>
    public string? Domain { get; set; }
    public string? Selector { get; set; }
    /// <summary>Path of a PEM RSA private key, or the PEM itself in <see cref="PrivateKey"/>.</summary>
    public string? PrivateKeyPath { get; set; }
    public string? PrivateKey { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Domain) && !string.IsNullOrWhiteSpace(Selector)
                           && (!string.IsNullOrWhiteSpace(PrivateKeyPath) || !string.IsNullOrWhiteSpace(PrivateKey));
}

/// <summary>The data a message is personalised with.</summary>
public sealed record MergeData(string Email, string UnsubscribeUrl, IReadOnlyDictionary<string, JsonElement> Preferences)
{
    public string? Lookup(string key) => key switch
    {
        "email" => Email,
        "unsubscribe_url" => UnsubscribeUrl,
        _ => Preferences.TryGetValue(key, out var v)
            ? v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Null or JsonValueKind.Undefined => null,
                _ => v.GetRawText(),
            }
            : null,
    };
}

/// <summary>
/// A parsed <c>{{ tag }}</c> template: literal parts and tag names, parsed once per job and rendered per recipient.
/// Unknown tags render empty. In HTML, values are HTML-escaped.
/// </summary>
public sealed partial class MergeTemplate
{
    private readonly string[] _literals;
    private readonly string[] _tags;
    private readonly bool _html;
    private readonly bool _crlf;

    private MergeTemplate(string[] literals, string[] tags, bool html, bool crlf) => (_literals, _tags, _html, _crlf) = (literals, tags, html, crlf);

    /// <param name="crlf">Render with CRLF line endings only (bodies: the message is encoded once, as it goes on the wire).</param>
    public static MergeTemplate Parse(string template, bool html, bool crlf = false)
    {
        var literals = new List<string>();
        var tags = new List<string>();
        var last = 0;
        foreach (Match m in TagPattern().Matches(template))
        {
            literals.Add(template[last..m.Index]);
            tags.Add(m.Groups[1].Value);
            last = m.Index + m.Length;
        }
        literals.Add(template[last..]);
        if (crlf)
        {
            literals = literals.Select(l => l.ReplaceLineEndings("\r\n")).ToList();
        }
        return new MergeTemplate([.. literals], [.. tags], html, crlf);
    }

    public string Render(MergeData data)
    {
        if (_tags.Length == 0)
        {
            return _literals[0];
        }
        var sb = new StringBuilder(_literals.Sum(l => l.Length) + 64 * _tags.Length);
        for (var i = 0; i < _tags.Length; i++)
        {
            sb.Append(_literals[i]);
            var value = data.Lookup(_tags[i]) ?? "";
            if (_crlf && value.AsSpan().IndexOfAny('\r', '\n') >= 0)
            {
                value = value.ReplaceLineEndings("\r\n");
            }
            sb.Append(_html ? WebUtility.HtmlEncode(value) : value);
        }
        sb.Append(_literals[^1]);
        return sb.ToString();
    }

    [GeneratedRegex(@"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")]
    private static partial Regex TagPattern();
}

/// <summary>
/// Builds the MIME message for one recipient of a job: merge tags, unsubscribe headers, Message-ID, optional DKIM.
/// Without DKIM the body is a <see cref="PrerenderedBody"/> (encoded once); a DKIM signature is computed over MimeKit's
/// own parts, which MimeKit prepares and canonicalises itself.
/// </summary>
public sealed class MessageComposer
{
    private static readonly HeaderId[] DkimHeaders = [HeaderId.From, HeaderId.To, HeaderId.Subject, HeaderId.Date, HeaderId.MessageId, HeaderId.ListUnsubscribe, HeaderId.ListUnsubscribePost];

    private readonly MailboxAddress _from;
    private readonly string? _replyTo;
    private readonly string _messageIdDomain;
    private readonly MergeTemplate _subject;
    private readonly MergeTemplate? _html;
    private readonly MergeTemplate? _text;
    private readonly DkimSigner? _dkim;

    public MessageComposer(SmtpOptions smtp, DkimSigner? dkim, string subject, string? bodyHtml, string? bodyText)
    {
        _from = new MailboxAddress(smtp.FromName, smtp.FromAddress);
        _replyTo = string.IsNullOrWhiteSpace(smtp.ReplyToAddress) ? null : smtp.ReplyToAddress;
        _messageIdDomain = smtp.FromAddress.Split('@') is [_, var domain] && domain.Length > 0 ? domain : "send-engine.local";
        _subject = MergeTemplate.Parse(subject, html: false);
        _html = bodyHtml is null ? null : MergeTemplate.Parse(bodyHtml, html: true, crlf: dkim is null);
        _text = bodyText is null ? null : MergeTemplate.Parse(bodyText, html: false, crlf: dkim is null);
        _dkim = dkim;
    }

    public static DkimSigner? CreateSigner(DkimOptions o)
    {
        if (!o.Enabled)
        {
            return null;
        }
        var pem = !string.IsNullOrWhiteSpace(o.PrivateKey) ? o.PrivateKey : File.ReadAllText(o.PrivateKeyPath!);
        using var stream = new MemoryStream(Encoding.ASCII.GetBytes(pem));
        return new DkimSigner(stream, o.Domain!, o.Selector!)
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            AgentOrUserIdentifier = "@" + o.Domain,
        };
    }

    /// <summary>Returns the message and its Message-ID (without angle brackets).</summary>
    public (MimeMessage Message, string MessageId) Compose(MergeData data)
    {
        var message = new MimeMessage();
        // A new address per message: InternetAddressList subscribes to the address's Changed event, so one shared
        // MailboxAddress would keep every message of the job alive (RSS grew by ~17 KB per message).
        message.From.Add(new MailboxAddress(_from.Name, _from.Address));
        message.To.Add(MailboxAddress.Parse(data.Email));
        if (_replyTo is not null)
        {
            message.ReplyTo.Add(new MailboxAddress((string?)null, _replyTo));
        }
        message.Subject = _subject.Render(data);
        message.Date = DateTimeOffset.UtcNow;
        var messageId = MimeUtils.GenerateMessageId(_messageIdDomain);
        message.MessageId = messageId;
        // RFC 2369 + RFC 8058: mail clients offer one-click unsubscribe, which POSTs List-Unsubscribe=One-Click to the URL.
        message.Headers.Add(HeaderId.ListUnsubscribe, "<" + data.UnsubscribeUrl + ">");
        message.Headers.Add(HeaderId.ListUnsubscribePost, "List-Unsubscribe=One-Click");

        var text = _text?.Render(data);
        var html = _html?.Render(data);
        if (_dkim is null)
        {
            message.Body = PrerenderedBody.Create(text, html);
            return (message, messageId);
        }
        message.Body = new BodyBuilder { TextBody = text, HtmlBody = html }.ToMessageBody();
        message.Prepare(EncodingConstraint.SevenBit);
        _dkim.Sign(message, DkimHeaders);
        return (message, messageId);
    }
}
