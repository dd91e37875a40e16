using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using MimeKit;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>One recipient a report is about. <see cref="Email"/> is null when the report names none (an ARF report
/// whose provider redacted the recipient; the VERP address still names the message).</summary>
/// <param name="EventType"><see cref="EmailEventTypes.HardBounce"/>, <see cref="EmailEventTypes.SoftBounce"/>,
/// <see cref="EmailEventTypes.SpamReport"/>, or <see cref="BounceParser.Delayed"/> / <see cref="BounceParser.NoEvent"/>
/// for reports that raise no event.</param>
public sealed record BounceRecipient(string? Email, string EventType, string Action, string? Status, string? Diagnostic, string? OriginalRecipient);

/// <summary>What a DSN or ARF report says, whatever shape it came in.</summary>
/// <param name="Format">imap-dsn or imap-arf (the <c>email_events.format</c>).</param>
/// <param name="Shape">rfc3464, rfc5965 or the non-standard text shape recognised (exim, qmail, text).</param>
/// <param name="EnvelopeAddresses">Addresses that may be our VERP return path: the report's own To/Delivered-To/
/// X-Original-To/Envelope-To (a DSN goes to the envelope sender), ARF's Original-Mail-From, the quoted original's
/// Return-Path.</param>
public sealed record BounceReport(
    string Format,
    string Shape,
    IReadOnlyList<BounceRecipient> Recipients,
    IReadOnlyList<string> EnvelopeAddresses,
    string? OriginalMessageId,
    string? ReportMessageId,
    DateTimeOffset? OccurredAt,
    string? FeedbackType);

/// <summary>
/// Reads delivery status notifications (RFC 3464 multipart/report; report-type=delivery-status, as Postfix, Gmail,
/// Outlook and most MTAs send them), the common plain-text bounces (Exim's "This message was created automatically by
/// mail delivery software", qmail/Yahoo's "Sorry, we were unable to deliver your message") and abuse feedback reports
/// (RFC 5965 ARF, as Yahoo's and Microsoft's JMRP feedback loops send them). Pure: no I/O.
/// </summary>
public static partial class BounceParser
{
    public const string DsnFormat = "imap-dsn";
    public const string ArfFormat = "imap-arf";
    /// <summary>Action: delayed. The MTA keeps trying; the final DSN, if any, is what counts, so it raises no event.</summary>
    public const string Delayed = "delayed";
    /// <summary>A report entry that raises no event (delivered, relayed, an ARF type other than abuse/fraud).</summary>
    public const string NoEvent = "none";

    /// <summary>The report, or null with <paramref name="reason"/> when the message is neither a DSN nor an ARF report.</summary>
    public static BounceReport? Parse(MimeMessage message, out string? reason)
    {
        reason = null;
        var envelope = EnvelopeOf(message);
        var parts = message.BodyParts.ToList();
        if (parts.OfType<MessageFeedbackReport>().FirstOrDefault() is { } feedback)
        {
            return ParseArf(message, feedback, parts, envelope, out reason);
        }
        if (parts.OfType<MessageDeliveryStatus>().FirstOrDefault() is { } status)
        {
            var report = ParseDsn(message, status, parts, envelope);
            if (report is not null)
            {
                return report;
            }
        }
        return ParseText(message, parts, envelope, out reason);
    }

    private static BounceReport? ParseDsn(MimeMessage message, MessageDeliveryStatus status, List<MimeEntity> parts, List<string> envelope)
    {
        var groups = status.StatusGroups;
        if (groups.Count < 2)
        {
            return null;
        }
        var perMessage = groups[0];
        var recipients = new List<BounceRecipient>();
        for (var i = 1; i < groups.Count; i++)
        {
            var g = groups[i];
            var action = (g["Action"] ?? "").Trim().ToLowerInvariant();
            var code = g["Status"]?.Trim();
            var diagnostic = Clean(g["Diagnostic-Code"]);
            var final = AddressOf(g["Final-Recipient"]) ?? AddressOf(g["Original-Recipient"]);
            var type = action switch
            {
                "failed" => ClassOf(code) ?? ClassOf(diagnostic) ?? EmailEventTypes.HardBounce,
                "delayed" => Delayed,
                _ => NoEvent,
            };
            recipients.Add(new BounceRecipient(final, type, action, code, diagnostic, AddressOf(g["Original-Recipient"])));
        }
        var original = OriginalHeaders(parts);
        AddOriginalEnvelope(envelope, original);
        var occurred = DateOf(perMessage["Arrival-Date"]) ?? DateOf(groups[1]["Last-Attempt-Date"]) ?? DateOf(message.Headers[HeaderId.Date]);
        return new BounceReport(DsnFormat, "rfc3464", recipients, envelope, MessageIdOf(original), ReportId(message), occurred, null);
    }

    private static BounceReport? ParseArf(MimeMessage message, MessageFeedbackReport feedback, List<MimeEntity> parts, List<string> envelope, out string? reason)
    {
        reason = null;
        var fields = feedback.Fields;
        var type = (fields["Feedback-Type"] ?? "").Trim().ToLowerInvariant();
        if (type.Length == 0)
        {
            reason = "feedback report without Feedback-Type";
            return null;
        }
        var original = OriginalHeaders(parts);
        if (AddressOf(fields["Original-Mail-From"]) is { } mailFrom)
        {
            envelope.Add(mailFrom);
        }
        AddOriginalEnvelope(envelope, original);
        var eventType = type is "abuse" or "fraud" ? EmailEventTypes.SpamReport : NoEvent;
        var rcpts = fields.Where(h => h.Field.Equals("Original-Rcpt-To", StringComparison.OrdinalIgnoreCase))
            .Select(h => AddressOf(h.Value)).OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (rcpts.Count == 0 && original?[HeaderId.To] is { } to && InternetAddressList.TryParse(to, out var list))
        {
            // Feedback loops often leave out Original-Rcpt-To; the quoted To is then the complainer (when not redacted).
            rcpts.AddRange(list.Mailboxes.Select(m => m.Address).Where(a => a.Contains('@', StringComparison.Ordinal)));
        }
        var recipients = rcpts.Count == 0
            ? [new BounceRecipient(null, eventType, "feedback:" + type, null, null, null)]
            : rcpts.Select(r => new BounceRecipient(r, eventType, "feedback:" + type, null, null, null)).ToList();
        var occurred = DateOf(fields["Arrival-Date"]) ?? DateOf(fields["Received-Date"]) ?? DateOf(message.Headers[HeaderId.Date]);
        return new BounceReport(ArfFormat, "rfc5965", recipients, envelope, MessageIdOf(original), ReportId(message), occurred, type);
    }

    /// <summary>The plain-text bounces of Exim, qmail (Yahoo), and MTAs that quote the original inline.</summary>
    private static BounceReport? ParseText(MimeMessage message, List<MimeEntity> parts, List<string> envelope, out string? reason)
    {
        reason = null;
        var text = message.TextBody ?? parts.OfType<TextPart>().FirstOrDefault(p => !p.IsHtml)?.Text ?? "";
        var from = message.From.Mailboxes.FirstOrDefault()?.Address ?? message.Sender?.Address ?? "";
        var local = from.Split('@')[0].ToLowerInvariant();
        var shape = EximPhrase().IsMatch(text) ? "exim" : QmailPhrase().IsMatch(text) ? "qmail" : null;
        var fromDaemon = local is "mailer-daemon" or "postmaster" or "mail-daemon" || local.StartsWith("mailer-daemon", StringComparison.Ordinal);
        if (shape is null && !(fromDaemon && (GenericPhrase().IsMatch(text) || message.Headers.Contains("X-Failed-Recipients"))))
        {
            reason = "neither a delivery status notification nor a feedback report";
            return null;
        }
        shape ??= "text";

        // What comes before the quoted original is the notice; the quoted original's addresses are not failures.
        var split = OriginalSeparator().Match(text);
        var notice = split.Success ? text[..split.Index] : text;
        MimeMessage? quoted = null;
        if (split.Success)
        {
            var rest = text[(split.Index + split.Length)..].TrimStart('\r', '\n', ' ', '\t');
            try
            {
                quoted = MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(rest)));
            }
            catch (FormatException)
            {
                quoted = null;
            }
        }
        var original = quoted?.Headers ?? OriginalHeaders(parts);
        AddOriginalEnvelope(envelope, original);

        var failed = message.Headers.Where(h => h.Field.Equals("X-Failed-Recipients", StringComparison.OrdinalIgnoreCase))
            .SelectMany(h => h.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(AddressOf).OfType<string>().ToList();
        if (failed.Count == 0)
        {
            failed = AddressLine().Matches(notice).Select(m => m.Groups[1].Value).ToList();
        }
        failed = failed.Distinct(StringComparer.OrdinalIgnoreCase).ToList();

        var delayed = DelayPhrase().IsMatch(notice);
        var code = EnhancedStatus().Match(notice) is { Success: true } es ? es.Value : null;
        var reply = SmtpReply().Match(notice) is { Success: true } sr ? sr.Groups[1].Value : null;
        var diagnostic = DiagnosticLine(notice, code ?? reply);
        string type;
        if (delayed && code?[0] != '5' && reply?[0] != '5')
        {
            type = Delayed;
        }
        else
        {
            type = ClassOf(code) ?? ClassOf(reply) ?? (PermanentPhrase().IsMatch(notice) ? EmailEventTypes.HardBounce : "");
        }
        if (type.Length == 0)
        {
            reason = "a bounce notice without a status code or a permanent-failure statement";
            return null;
        }
        var action = type == Delayed ? "delayed" : "failed";
        var recipients = failed.Count == 0
            ? [new BounceRecipient(null, type, action, code, diagnostic, null)]
            : failed.Select(f => new BounceRecipient(f, type, action, code, diagnostic, null)).ToList();
        return new BounceReport(DsnFormat, shape, recipients, envelope, MessageIdOf(original), ReportId(message), DateOf(message.Headers[HeaderId.Date]), null);
    }

    /// <summary>hard_bounce for a 5.x.x status or 5xx reply, soft_bounce for 4.x.x / 4xx, null when neither is found.</summary>
    internal static string? ClassOf(string? code)
    {
        if (code is null)
        {
            return null;
        }
        var m = StatusOrReply().Match(code);
        if (!m.Success)
        {
            return null;
        }
        return m.Value[0] == '5' ? EmailEventTypes.HardBounce : m.Value[0] == '4' ? EmailEventTypes.SoftBounce : null;
    }

    private static List<string> EnvelopeOf(MimeMessage message)
    {
        var list = new List<string>();
        foreach (var h in message.Headers)
        {
            if (h.Field.Equals("Delivered-To", StringComparison.OrdinalIgnoreCase) || h.Field.Equals("X-Original-To", StringComparison.OrdinalIgnoreCase)
                || h.Field.Equals("Envelope-To", StringComparison.OrdinalIgnoreCase) || h.Field.Equals("X-Envelope-To", StringComparison.OrdinalIgnoreCase))
            {
                if (AddressOf(h.Value) is { } a)
                {
                    list.Add(a);
                }
            }
        }
        list.AddRange(message.To.Mailboxes.Select(m => m.Address));
        list.AddRange(message.Cc.Mailboxes.Select(m => m.Address));
        return list;
    }

    private static void AddOriginalEnvelope(List<string> envelope, HeaderList? original)
    {
        if (original is null)
        {
            return;
        }
        if (AddressOf(original[HeaderId.ReturnPath]) is { } rp)
        {
            envelope.Add(rp);
        }
        if (AddressOf(original[HeaderId.Sender]) is { } sender)
        {
            envelope.Add(sender);
        }
    }

    /// <summary>The headers of the quoted original: a message/rfc822 or text/rfc822-headers part.</summary>
    private static HeaderList? OriginalHeaders(List<MimeEntity> parts)
    {
        foreach (var p in parts)
        {
            if (p is MessagePart { Message: { } m })
            {
                return m.Headers;
            }
        }
        return null;
    }

    private static string? MessageIdOf(HeaderList? headers)
    {
        var raw = headers?[HeaderId.MessageId];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return null;
        }
        var id = raw.Trim().Trim('<', '>').Trim();
        return id.Length is 0 or > 255 ? null : id;
    }

    private static string? ReportId(MimeMessage message) => message.MessageId is { Length: > 0 and <= 500 } id ? id : null;

    /// <summary>"rfc822; a@b" / "&lt;a@b&gt;" / "a@b" → "a@b"; null without an @.</summary>
    internal static string? AddressOf(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        var v = value.Trim();
        var semi = v.IndexOf(';', StringComparison.Ordinal);
        if (semi >= 0 && semi < 20)
        {
            v = v[(semi + 1)..].Trim();
        }
        var lt = v.IndexOf('<', StringComparison.Ordinal);
        var gt = v.IndexOf('>', StringComparison.Ordinal);
        if (lt >= 0 && gt > lt)
        {
            v = v[(lt + 1)..gt];
        }
        v = v.Trim().Trim('"');
        var at = v.IndexOf('@', StringComparison.Ordinal);
        return at <= 0 || at == v.Length - 1 || v.Length > 320 || v.Any(char.IsWhiteSpace) ? null : v;
    }

    private static DateTimeOffset? DateOf(string? value) =>
        value is not null && MimeKit.Utils.DateUtils.TryParse(value, out var d) ? d : null;

    private static string? Clean(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        var s = Regex.Replace(value.Replace('\0', ' '), @"\s+", " ").Trim();
        return s.Length > 1000 ? s[..1000] : s;
    }

    private static string? DiagnosticLine(string notice, string? code)
    {
        if (code is null)
        {
            return null;
        }
        var at = notice.IndexOf(code, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }
        var start = notice.LastIndexOf('\n', at) + 1;
        var end = notice.IndexOf('\n', at);
        return Clean(notice[start..(end < 0 ? notice.Length : end)]);
    }

    [GeneratedRegex(@"created automatically by mail delivery software|following address\(es\) failed", RegexOptions.IgnoreCase)]
    private static partial Regex EximPhrase();

    [GeneratedRegex(@"unable to deliver your message to the following address|I'm sorry to have to inform you that your message could not|This is a permanent error; I've given up", RegexOptions.IgnoreCase)]
    private static partial Regex QmailPhrase();

    [GeneratedRegex(@"undeliver|delivery (status notification|has failed|failed)|could not be delivered|failed permanently|returned mail|user unknown|does not exist", RegexOptions.IgnoreCase)]
    private static partial Regex GenericPhrase();

    [GeneratedRegex(@"permanent(ly)? (error|failure|fatal)|failed permanently|could not be delivered|does not exist|user unknown", RegexOptions.IgnoreCase)]
    private static partial Regex PermanentPhrase();

    [GeneratedRegex(@"has not yet been delivered|delivery (has been |is )?delayed|message delayed|will (continue to |keep )?(retry|try)|still trying", RegexOptions.IgnoreCase)]
    private static partial Regex DelayPhrase();

    [GeneratedRegex(@"^[ \t]*-{2,}[ \t]*(This is a copy of (the|your) message|Below this line is a copy of the message|Original message( follows| headers)?|Returned message|The header of the original message)[^\n]*\n", RegexOptions.IgnoreCase | RegexOptions.Multiline)]
    private static partial Regex OriginalSeparator();

    [GeneratedRegex(@"^[ \t]*<?([^\s<>@""]+@[^\s<>@""]+\.[^\s<>@"":]+)>?:?[ \t]*\r?$", RegexOptions.Multiline)]
    private static partial Regex AddressLine();

    [GeneratedRegex(@"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])")]
    private static partial Regex EnhancedStatus();

    [GeneratedRegex(@"(?:^|[\s:(#])([45][0-5]\d)(?=[\s\-:])", RegexOptions.Multiline)]
    private static partial Regex SmtpReply();

    [GeneratedRegex(@"(?<![\d.])[45](\.\d{1,3}\.\d{1,3}|\d\d)(?![\d])")]
    private static partial Regex StatusOrReply();
}
