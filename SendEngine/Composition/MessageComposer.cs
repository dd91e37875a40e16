using System.Text;
using MimeKit.Cryptography;
using MimeKit.Utils;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Transports;

namespace SendEngine.Composition;

/// <summary>
/// Builds one recipient's <see cref="OutgoingMessage"/> of a job: merge tags, unsubscribe headers, Message-ID. Made once
/// per job: the templates are parsed here, and per recipient only the merge values are escaped and concatenated with
/// the literals. Transports render the parts (SMTP: MIME with the job's <see cref="MimeRendering"/>, optionally DKIM).
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

    public MessageComposer(SmtpOptions smtp, DkimSigner? dkim, string subject, string? bodyHtml, string? bodyText)
    {
        _fromName = smtp.FromName;
        _fromAddress = smtp.FromAddress;
        _replyTo = string.IsNullOrWhiteSpace(smtp.ReplyToAddress) ? null : smtp.ReplyToAddress;
        _messageIdDomain = smtp.FromAddress.Split('@') is [_, var domain] && domain.Length > 0 ? domain : "send-engine.local";
        _subject = MergeTemplate.Parse(subject, html: false);
        // Without DKIM the SMTP transport encodes the bodies as they go on the wire (CRLF); with it MimeKit does.
        _html = bodyHtml is null ? null : MergeTemplate.Parse(bodyHtml, html: true, crlf: dkim is null);
        _text = bodyText is null ? null : MergeTemplate.Parse(bodyText, html: false, crlf: dkim is null);
        _rendering = dkim is null ? MimeRendering.Default : new MimeRendering(dkim);
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

    /// <summary>The message for one recipient; its <see cref="OutgoingMessage.MessageId"/> is new (without angle brackets).</summary>
    public OutgoingMessage Compose(MergeData data) => new()
    {
        From = new MessageAddress(_fromName, _fromAddress),
        To = data.Email,
        ReplyTo = _replyTo,
        Subject = _subject.Render(data),
        MessageId = MimeUtils.GenerateMessageId(_messageIdDomain),
        Date = DateTimeOffset.UtcNow,
        // RFC 2369 + RFC 8058: mail clients offer one-click unsubscribe, which POSTs List-Unsubscribe=One-Click to the URL.
        Headers = [new("List-Unsubscribe", "<" + data.UnsubscribeUrl + ">"), new("List-Unsubscribe-Post", OneClick)],
        TextBody = _text?.Render(data),
        HtmlBody = _html?.Render(data),
        Rendering = _rendering,
    };
}
