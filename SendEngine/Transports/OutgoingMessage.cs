using MimeKit.Cryptography;

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

    /// <summary>The merged text body, or null; at least one body is set.</summary>
    public string? TextBody { get; init; }

    /// <summary>The merged HTML body, or null.</summary>
    public string? HtmlBody { get; init; }

    /// <summary>Per-job state for rendering MIME, shared by the job's messages (null: defaults, no DKIM).</summary>
    public MimeRendering? Rendering { get; init; }
}

/// <summary>
/// What a job's messages share when they are rendered as MIME (SMTP), made once per job by the composer rather than
/// per message: the DKIM signer (its parsed key), and the header fields it signs.
/// </summary>
public sealed class MimeRendering(DkimSigner? dkim)
{
    public static readonly MimeRendering Default = new(null);

    /// <summary>Signs each message (relaxed/relaxed); null = no DKIM, the body is pre-encoded once (PrerenderedBody).</summary>
    public DkimSigner? Dkim { get; } = dkim;
}
