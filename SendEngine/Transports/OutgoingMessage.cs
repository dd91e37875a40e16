using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using SendEngine.Composition;

namespace SendEngine.Transports;

/// <summary>A mailbox with an optional display name.</summary>
public readonly record struct MessageAddress(string? Name, string Address);

/// <summary>A header field added as is (List-Unsubscribe, List-Unsubscribe-Post, …).</summary>
public readonly record struct MessageHeader(string Name, string Value);

/// <summary>An attachment, or an inline image whose <paramref name="Name"/> is its Content-ID (cid:NAME in the HTML).</summary>
public sealed record MessageFile(string ContentType, string Name, byte[] Content);

/// <summary>
/// One recipient's message as parts, like listmonk's Messenger message: each transport renders what it needs from it
/// (SMTP: MIME, Tencent SES: the SendEmail payload), so no transport has to take a MIME message apart again.
/// </summary>
public sealed class OutgoingMessage
{
    public required MessageAddress From { get; init; }

    /// <summary>The one recipient's address: the envelope recipient, and the To header unless <see cref="VisibleTo"/> is set.</summary>
    public required string To { get; init; }

    /// <summary>The recipient's display name in the To header (null: the address alone).</summary>
    public string? ToName { get; init; }

    /// <summary>
    /// The To header when it shows more than the recipient (transactional preserve_recipients: every "to" recipient);
    /// the envelope still names only <see cref="To"/> (and <see cref="EnvelopeBcc"/>). Empty: no To header (a hidden
    /// recipient).
    /// </summary>
    public IReadOnlyList<MessageAddress>? VisibleTo { get; init; }

    /// <summary>The Cc header (transactional preserve_recipients: every "cc" recipient); header only, never the envelope.</summary>
    public IReadOnlyList<MessageAddress> VisibleCc { get; init; } = [];

    /// <summary>Further envelope recipients that get an exact copy and appear in no header (transactional bcc_address).</summary>
    public IReadOnlyList<string> EnvelopeBcc { get; init; } = [];

    /// <summary>Files attached to the message.</summary>
    public IReadOnlyList<MessageFile> Attachments { get; init; } = [];

    /// <summary>Images the HTML shows inline (multipart/related, Content-ID = name).</summary>
    public IReadOnlyList<MessageFile> InlineImages { get; init; } = [];

    /// <summary>
    /// The envelope sender (SMTP MAIL FROM) when it is not <see cref="From"/>: the VERP return path on a verified
    /// sender domain's bounce domain (<see cref="Composition.ReturnPath"/>), so bounces name the message and SPF aligns.
    /// </summary>
    public string? EnvelopeFrom { get; init; }

    /// <summary>Reply-To address, when replies should not go to <see cref="From"/>.</summary>
    public string? ReplyTo { get; init; }

    public required string Subject { get; init; }

    /// <summary>The Message-ID without angle brackets; stored with the recipient and sent as the header.</summary>
    public required string MessageId { get; init; }

    public DateTimeOffset Date { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Extra header fields, in order (e.g. RFC 2369/8058 List-Unsubscribe and List-Unsubscribe-Post).</summary>
    public IReadOnlyList<MessageHeader> Headers { get; init; } = [];

    private string? _textBody;
    private string? _htmlBody;

    /// <summary>The merged text body, or null; at least one body is set (here or as <see cref="TextMerge"/>).</summary>
    public string? TextBody { get => _textBody ??= TextMerge?.Text; init => _textBody = value; }

    /// <summary>The merged HTML body, or null.</summary>
    public string? HtmlBody { get => _htmlBody ??= HtmlMerge?.Text; init => _htmlBody = value; }

    /// <summary>
    /// The text body as its template and the recipient's values (bulk jobs): <see cref="TextBody"/> merges it when
    /// read; the SMTP transport writes a 7bit part from it without merging it as text first.
    /// </summary>
    public MergedBody? TextMerge { get; init; }

    /// <summary>The HTML body as its template and the recipient's values, like <see cref="TextMerge"/>.</summary>
    public MergedBody? HtmlMerge { get; init; }

    /// <summary>Per-job state for rendering MIME, shared by the job's messages (null: defaults, no DKIM).</summary>
    public MimeRendering? Rendering { get; init; }
}

/// <summary>
/// What a job's messages share when they are rendered as MIME (SMTP), made once per job by the composer rather than
/// per message: the DKIM signer (its parsed key), whether the messages go as <see cref="WireMessage"/>s, and the header
/// fields every message of the job has, formatted once.
/// </summary>
public sealed class MimeRendering(DkimSigner? dkim, bool wire = false)
{
    public static readonly MimeRendering Default = new(null);

    /// <summary>Signs each message (relaxed/relaxed); null = no DKIM, the body is pre-encoded once (PrerenderedBody).</summary>
    public DkimSigner? Dkim { get; } = dkim;

    /// <summary>
    /// The SMTP transport writes the messages as bytes (<see cref="WireMessage"/>) rather than through MimeKit's model
    /// when they allow it (one recipient in the envelope and the To field, no attachments); set by the bulk and the
    /// transactional composers.
    /// </summary>
    public bool Wire { get; } = wire;

    // Read and replaced whole by the job's workers at once (a reference, never torn).
    private Cached<MessageAddress>? _from;
    private Cached<string>? _replyTo;
    private Cached<string>? _subject;

    /// <summary>The From field (MimeKit's formatting: encoded display name), computed for the job's first message.</summary>
    internal byte[] FromField(MessageAddress from)
    {
        if (_from is { } cached && cached.Key == from)
        {
            return cached.Field;
        }
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(from.Name, from.Address));
        var field = Line("From", message.Headers.First(h => h.Id == HeaderId.From).RawValue);
        _from = new(from, field);
        return field;
    }

    internal byte[] ReplyToField(string replyTo)
    {
        if (_replyTo is { } cached && cached.Key == replyTo)
        {
            return cached.Field;
        }
        var message = new MimeMessage();
        message.ReplyTo.Add(new MailboxAddress((string?)null, replyTo));
        var field = Line("Reply-To", message.Headers.First(h => h.Id == HeaderId.ReplyTo).RawValue);
        _replyTo = new(replyTo, field);
        return field;
    }

    /// <summary>A subject MimeKit has to encode: kept while messages share it (a subject without merge tags is one string).</summary>
    internal byte[] SubjectField(string subject)
    {
        if (_subject is { } cached && ReferenceEquals(cached.Key, subject))
        {
            return cached.Field;
        }
        var field = Format("Subject", subject);
        _subject = new(subject, field);
        return field;
    }

    /// <summary>A header field as MimeKit formats it (RFC 2047 encoded words, folded), with CRLF line endings.</summary>
    internal static byte[] Format(string name, string value) => Line(name, new Header(Encoding.UTF8, name, value).RawValue);

    private sealed record Cached<T>(T Key, byte[] Field);

    private static byte[] Line(string name, byte[] rawValue)
    {
        var text = name + ":" + Encoding.ASCII.GetString(rawValue).ReplaceLineEndings("\r\n");
        return Encoding.ASCII.GetBytes(text.EndsWith("\r\n", StringComparison.Ordinal) ? text : text + "\r\n");
    }
}
