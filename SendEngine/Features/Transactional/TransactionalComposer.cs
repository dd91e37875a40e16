using System.Text.Json;
using MimeKit.Cryptography;
using MimeKit.Utils;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;
using SendEngine.Transports;

namespace SendEngine.Features.Transactional;

/// <summary>
/// Builds each task's <see cref="OutgoingMessage"/> of one request: templates parsed once (Composition's
/// <see cref="MergeTemplate"/>, in the request's merge language), per task only the merge values differ. Mailchimp tags
/// (<c>*|NAME|*</c>) insert content as is (Mandrill's behaviour: merge content may be HTML); handlebars
/// (<see cref="HandlebarsTemplate"/>: <c>{{name}}</c> escaped in HTML, <c>{{{name}}}</c> as is, #if/#unless/#each/#with
/// blocks over JSON merge values). Headers the platform owns are never taken from the tenant.
/// </summary>
public sealed class TransactionalComposer
{
    /// <summary>Header fields the platform sets itself (From alignment, Message-ID, DKIM, structure, envelope).</summary>
    public static readonly HashSet<string> PlatformHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "From", "Sender", "To", "Cc", "Bcc", "Message-ID", "Date", "Subject", "DKIM-Signature", "Return-Path", "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding", "Content-ID", "Received", "Resent-From", "Resent-Sender", "Resent-To",
        "Resent-Cc", "Resent-Bcc", "Resent-Message-ID", "Resent-Date", "ARC-Seal", "ARC-Message-Signature",
        "ARC-Authentication-Results", "Authentication-Results", "Feedback-ID",
    };

    private readonly EmailMessage _m;
    private readonly MergeTemplate? _subject;
    private readonly MergeTemplate? _html;
    private readonly MergeTemplate? _text;
    private readonly HandlebarsTemplate? _hbSubject;
    private readonly HandlebarsTemplate? _hbHtml;
    private readonly HandlebarsTemplate? _hbText;
    private readonly Dictionary<string, JsonElement?> _globalValues;
    private readonly Dictionary<string, Dictionary<string, JsonElement?>> _perRecipientValues;
    private readonly Dictionary<string, string?> _globals;
    private readonly Dictionary<string, Dictionary<string, string?>> _perRecipient;
    private readonly List<MessageHeader> _headers;
    private readonly string? _replyTo;
    private readonly string _messageIdDomain;
    private readonly MimeRendering _rendering;
    private readonly IReadOnlyList<MessageAddress>? _visibleTo;
    private readonly IReadOnlyList<MessageAddress> _visibleCc;
    private readonly IReadOnlyList<MessageFile> _attachments;
    private readonly IReadOnlyList<MessageFile> _images;

    private readonly Func<Guid, string>? _envelopeFor;

    /// <param name="feedbackId">The Feedback-ID field (Gmail's feedback loop), or null.</param>
    /// <param name="envelopeFor">The envelope sender of a task (VERP on a verified domain); null: the from address.</param>
    public TransactionalComposer(EmailMessage m, DkimSigner? dkim, string? feedbackId = null, Func<Guid, string>? envelopeFor = null)
    {
        _m = m;
        _envelopeFor = envelopeFor;
        var merge = m.Merge ?? true;
        var mailchimp = !string.Equals(m.MergeLanguage, "handlebars", StringComparison.OrdinalIgnoreCase);
        var syntax = mailchimp ? MergeSyntax.Mailchimp : MergeSyntax.Handlebars;
        var crlf = dkim is null;
        if (merge && !mailchimp)
        {
            _hbSubject = HandlebarsTemplate.Parse(m.Subject ?? "", html: false);
            _hbHtml = m.Html is null ? null : HandlebarsTemplate.Parse(m.Html, html: true, crlf);
            _hbText = m.Text is null ? null : HandlebarsTemplate.Parse(m.Text, html: false, crlf);
        }
        else if (merge)
        {
            _subject = MergeTemplate.Parse(m.Subject ?? "", html: false, syntax: syntax);
            _html = m.Html is null ? null : MergeTemplate.Parse(m.Html, html: !mailchimp, crlf, syntax);
            _text = m.Text is null ? null : MergeTemplate.Parse(m.Text, html: false, crlf, syntax);
        }
        _globals = Vars(m.GlobalMergeVars);
        _globalValues = JsonVars(m.GlobalMergeVars);
        _perRecipient = new Dictionary<string, Dictionary<string, string?>>(StringComparer.Ordinal);
        _perRecipientValues = new Dictionary<string, Dictionary<string, JsonElement?>>(StringComparer.Ordinal);
        foreach (var r in m.MergeVars ?? [])
        {
            if (r.Rcpt is { } rcpt && EmailAddresses.TryNormalize(rcpt, out _, out var key, out _))
            {
                _perRecipient[key] = Vars(r.Vars);
                _perRecipientValues[key] = JsonVars(r.Vars);
            }
        }
        _headers = [];
        foreach (var (name, value) in m.Headers ?? new Dictionary<string, string>())
        {
            if (string.Equals(name, "Reply-To", StringComparison.OrdinalIgnoreCase))
            {
                _replyTo = value.Trim();
            }
            else if (!PlatformHeaders.Contains(name))
            {
                _headers.Add(new MessageHeader(name, value));
            }
        }
        if (feedbackId is not null)
        {
            _headers.Add(new MessageHeader("Feedback-ID", feedbackId));
        }
        if (m.Important == true)
        {
            _headers.Add(new MessageHeader("X-Priority", "1 (Highest)"));
            _headers.Add(new MessageHeader("Importance", "high"));
        }
        var from = m.FromEmail!;
        _messageIdDomain = from[(from.LastIndexOf('@') + 1)..];
        _rendering = dkim is null ? MimeRendering.Default : new MimeRendering(dkim);
        var recipients = (m.To ?? []).Where(r => r.Email is not null && EmailAddresses.TryNormalize(r.Email, out _, out _, out _)).ToList();
        if (m.PreserveRecipients == true)
        {
            // Everyone sees the to and cc recipients (bcc ones stay hidden); each message still goes only to its own recipient.
            _visibleTo = recipients.Where(r => TypeOf(r) == "to").Select(r => new MessageAddress(r.Name, r.Email!.Trim())).ToList();
            _visibleCc = recipients.Where(r => TypeOf(r) == "cc").Select(r => new MessageAddress(r.Name, r.Email!.Trim())).ToList();
        }
        else
        {
            _visibleCc = [];
        }
        _attachments = Files(m.Attachments);
        _images = Files(m.Images);
    }

    /// <summary>A new Message-ID (without angle brackets) under the domain of <paramref name="fromEmail"/>.</summary>
    public static string NewMessageId(string fromEmail) => MimeUtils.GenerateMessageId(fromEmail[(fromEmail.LastIndexOf('@') + 1)..]);

    /// <summary>to, cc or bcc (to when absent).</summary>
    public static string TypeOf(EmailRecipient r) => string.IsNullOrEmpty(r.Type) ? "to" : r.Type.ToLowerInvariant();

    /// <summary>One task's message, with the Message-ID chosen at its creation (or a new one under the sender's domain).</summary>
    /// <param name="taskId">The task, named by the VERP envelope sender.</param>
    /// <param name="messageId">The task's Message-ID (without angle brackets); null for a new one (tasks created before it was stored).</param>
    public OutgoingMessage Compose(string email, string emailKey, string? name, Guid taskId = default, string? messageId = null)
    {
        var values = new Values(_perRecipient.GetValueOrDefault(emailKey), _globals);
        var own = _perRecipientValues.GetValueOrDefault(emailKey);
        Func<string, JsonElement?> lookup = name => own is not null && own.TryGetValue(name, out var v) ? v : _globalValues.GetValueOrDefault(name);
        return new OutgoingMessage
        {
            EnvelopeFrom = _envelopeFor?.Invoke(taskId),
            From = new MessageAddress(string.IsNullOrEmpty(_m.FromName) ? null : _m.FromName, _m.FromEmail!.Trim()),
            To = email.Trim(),
            ToName = string.IsNullOrEmpty(name) ? null : name,
            VisibleTo = _visibleTo,
            VisibleCc = _visibleCc,
            EnvelopeBcc = string.IsNullOrWhiteSpace(_m.BccAddress) ? [] : [_m.BccAddress.Trim()],
            ReplyTo = _replyTo,
            Subject = _hbSubject?.Render(lookup) ?? _subject?.Render(values) ?? _m.Subject ?? "",
            MessageId = messageId ?? NewMessageId(_m.FromEmail!),
            Date = DateTimeOffset.UtcNow,
            Headers = _headers,
            TextBody = _hbText is not null ? _hbText.Render(lookup) : _text is not null ? _text.Render(values) : _m.Text,
            HtmlBody = _hbHtml is not null ? _hbHtml.Render(lookup) : _html is not null ? _html.Render(values) : _m.Html,
            Attachments = _attachments,
            InlineImages = _images,
            Rendering = _rendering,
        };
    }

    private static Dictionary<string, string?> Vars(IReadOnlyList<MergeVar>? vars)
    {
        var d = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var v in vars ?? [])
        {
            if (v.Name is { } n)
            {
                d[n] = v.Content switch
                {
                    null => null,
                    { ValueKind: JsonValueKind.String } s => s.GetString(),
                    { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => null,
                    { } other => other.GetRawText(),
                };
            }
        }
        return d;
    }

    /// <summary>The merge vars as JSON values (handlebars blocks iterate arrays and read objects' fields).</summary>
    private static Dictionary<string, JsonElement?> JsonVars(IReadOnlyList<MergeVar>? vars)
    {
        var d = new Dictionary<string, JsonElement?>(StringComparer.OrdinalIgnoreCase);
        foreach (var v in vars ?? [])
        {
            if (v.Name is { } n)
            {
                d[n] = v.Content;
            }
        }
        return d;
    }

    private static List<MessageFile> Files(IReadOnlyList<EmailAttachment>? files) =>
        (files ?? []).Select(f => new MessageFile(f.Type!, f.Name!, Convert.FromBase64String(f.Content!))).ToList();

    /// <summary>The recipient's merge_vars over the global ones, case-insensitive.</summary>
    private sealed class Values(Dictionary<string, string?>? own, Dictionary<string, string?> globals) : IMergeValues
    {
        public string? Lookup(string key) =>
            own is not null && own.TryGetValue(key, out var v) ? v : globals.GetValueOrDefault(key);
    }
}
