using MimeKit.Cryptography;
using MimeKit.Utils;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Transports;

namespace SendEngine.Composition;

/// <summary>
/// Builds one recipient's <see cref="OutgoingMessage"/> of a job: merge tags, unsubscribe headers, Message-ID. Made once
/// per job: the templates are parsed here, and per recipient only the merge values are looked up and escaped; the
/// bodies are bound to them (<see cref="MergedBody"/>). Transports render the parts in the form they need (SMTP: bytes
/// on the wire, <see cref="WireMessage"/>, with the job's <see cref="MimeRendering"/>, optionally DKIM).
/// </summary>
public sealed class MessageComposer
{
    private const string OneClick = "List-Unsubscribe=One-Click";

    private readonly string? _fromName;
    private readonly string _fromAddress;
    private readonly string? _replyTo;
    private readonly string _messageIdDomain;
    private readonly MergeTemplate _subject;
    private readonly MergeTemplate? _html;
    private readonly MergeTemplate? _text;
    private readonly MimeRendering _rendering;

    private readonly IReadOnlyList<MessageHeader> _extraHeaders;
    private readonly Func<long, string>? _envelopeFor;

    /// <param name="extraHeaders">Fields every message of the job carries (List-Id, Feedback-ID).</param>
    /// <param name="envelopeFor">The envelope sender of a recipient row (VERP on a verified domain); null: the From address.</param>
    /// <param name="from">The job's own From; null: the platform's (<see cref="SmtpOptions.FromAddress"/>, FromName).</param>
    public MessageComposer(SmtpOptions smtp, DkimSigner? dkim, string subject, string? bodyHtml, string? bodyText,
        IReadOnlyList<MessageHeader>? extraHeaders = null, Func<long, string>? envelopeFor = null, MessageAddress? from = null)
    {
        _extraHeaders = extraHeaders ?? [];
        _envelopeFor = envelopeFor;
        _fromName = from is { } own ? own.Name : smtp.FromName;
        _fromAddress = from?.Address ?? smtp.FromAddress;
        _replyTo = string.IsNullOrWhiteSpace(smtp.ReplyToAddress) ? null : smtp.ReplyToAddress;
        _messageIdDomain = MessageIdDomainOf(_fromAddress);
        _subject = MergeTemplate.Parse(subject, html: false);
        // The SMTP transport writes the bodies as they go on the wire (CRLF), signed or not (WireMessage).
        _html = bodyHtml is null ? null : MergeTemplate.Parse(bodyHtml, html: true, crlf: true);
        _text = bodyText is null ? null : MergeTemplate.Parse(bodyText, html: false, crlf: true);
        _rendering = new MimeRendering(dkim, wire: true);
    }

    public static DkimSigner? CreateSigner(DkimOptions o)
    {
        if (!o.Enabled)
        {
            return null;
        }
        var pem = !string.IsNullOrWhiteSpace(o.PrivateKey) ? o.PrivateKey : File.ReadAllText(o.PrivateKeyPath!);
        return new RsaDkimSigner(pem, o.Domain!, o.Selector!);
    }

    /// <summary>The right-hand side of the Message-IDs of mail from <paramref name="fromAddress"/>: its domain.</summary>
    public static string MessageIdDomainOf(string fromAddress) =>
        fromAddress.Split('@') is [_, var domain] && domain.Length > 0 ? domain : "send-engine.local";

    /// <summary>The message for one recipient.</summary>
    /// <param name="recipientId">The recipient row, named by the VERP envelope sender.</param>
    /// <param name="messageId">The Message-ID chosen for it beforehand (without angle brackets); null: a new one.</param>
    public OutgoingMessage Compose(MergeData data, long recipientId = 0, string? messageId = null) => new()
    {
        EnvelopeFrom = _envelopeFor?.Invoke(recipientId),
        From = new MessageAddress(_fromName, _fromAddress),
        To = data.Email,
        ReplyTo = _replyTo,
        Subject = _subject.Render(data),
        MessageId = messageId ?? MimeUtils.GenerateMessageId(_messageIdDomain),
        Date = DateTimeOffset.UtcNow,
        // RFC 2369 + RFC 8058: mail clients offer one-click unsubscribe, which POSTs List-Unsubscribe=One-Click to the URL.
        Headers = [new("List-Unsubscribe", "<" + data.UnsubscribeUrl + ">"), new("List-Unsubscribe-Post", OneClick), .. _extraHeaders],
        TextMerge = _text?.Bind(data),
        HtmlMerge = _html?.Bind(data),
        Rendering = _rendering,
    };
}
