using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Encodings;
using MimeKit.IO;
using MimeKit.IO.Filters;
using SendEngine.Transports;

namespace SendEngine.Composition;

/// <summary>
/// A message body whose MIME content is encoded once, when the message is composed: one text part, or a
/// multipart/alternative of text and HTML. MimeKit's own parts re-scan and re-encode their content each time the
/// message is written, and MailKit writes it twice (once to measure it for SIZE, once to send); here both are a copy.
/// Parts are 7bit when they are ASCII with lines of at most 998 octets, quoted-printable otherwise, so no server
/// extension (8BITMIME) is needed.
/// </summary>
public sealed class PrerenderedBody : MimeEntity
{
    private const int MaxLineLength = MergeTemplate.MaxLineLength;
    private static readonly byte[] SevenBitText = Encoding.ASCII.GetBytes("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
    private static readonly byte[] QuotedText = Encoding.ASCII.GetBytes("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    private static readonly byte[] SevenBitHtml = Encoding.ASCII.GetBytes("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
    private static readonly byte[] QuotedHtml = Encoding.ASCII.GetBytes("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");

    /// <summary>The content after the entity's headers, CRLF line endings, 7-bit.</summary>
    private readonly byte[] _content;

    private PrerenderedBody(ContentType type, byte[] content, string? text, string? html) : base(type)
    {
        _content = content;
        Text = text;
        Html = html;
    }

    /// <summary>The text body as merged (for transports that take the parts rather than MIME).</summary>
    public string? Text { get; }

    /// <summary>The HTML body as merged.</summary>
    public string? Html { get; }

    /// <param name="text">The text body; CRLF line endings expected (others are normalised).</param>
    /// <param name="html">The HTML body, likewise.</param>
    public static PrerenderedBody Create(string? text, string? html)
    {
        var encoded = Encode(text, html);
        if (encoded.Boundary is { } boundary)
        {
            return new PrerenderedBody(new ContentType("multipart", "alternative") { Boundary = boundary }, encoded.Content, text, html);
        }
        var body = new PrerenderedBody(new ContentType("text", encoded.Html ? "html" : "plain") { Charset = "utf-8" }, encoded.Content, text, html);
        body.Headers.Add(HeaderId.ContentTransferEncoding, encoded.Quoted ? "quoted-printable" : "7bit");
        return body;
    }

    /// <summary>
    /// A body's content encoded for the wire, without the entity's own header fields: for both bodies the parts of a
    /// multipart/alternative with a new <see cref="EncodedBody.Boundary"/>, else the one part's content.
    /// </summary>
    public static EncodedBody Encode(string? text, string? html) =>
        Encode(text is null ? null : new Part(text), html is null ? null : new Part(html));

    /// <summary>
    /// The message's bodies encoded for the wire, like <see cref="Encode(string?, string?)"/>: a body given as a
    /// template and its values (<see cref="OutgoingMessage.TextMerge"/>) that is 7bit is written from them directly.
    /// </summary>
    public static EncodedBody Encode(OutgoingMessage m) => Encode(
        m.TextMerge is { } textMerge ? new Part(textMerge) : m.TextBody is { } text ? new Part(text) : null,
        m.HtmlMerge is { } htmlMerge ? new Part(htmlMerge) : m.HtmlBody is { } html ? new Part(html) : null);

    private static EncodedBody Encode(Part? text, Part? html)
    {
        if (text is { } textPart && html is { } htmlPart)
        {
            var boundary = NewBoundary();
            var textHeaders = textPart.Quoted ? QuotedText : SevenBitText;
            var htmlHeaders = htmlPart.Quoted ? QuotedHtml : SevenBitHtml;
            // --boundary CRLF headers part --boundary CRLF headers part --boundary-- CRLF
            var delimiter = 2 + boundary.Length + 2;
            var content = new byte[delimiter + textHeaders.Length + textPart.Length + delimiter + htmlHeaders.Length + htmlPart.Length + delimiter + 2];
            var span = content.AsSpan();
            var at = Delimiter(span, boundary, "\r\n"u8);
            at += Copy(textHeaders, span[at..]);
            at += textPart.CopyTo(span[at..]);
            at += Delimiter(span[at..], boundary, "\r\n"u8);
            at += Copy(htmlHeaders, span[at..]);
            at += htmlPart.CopyTo(span[at..]);
            at += Delimiter(span[at..], boundary, "--\r\n"u8);
            Debug.Assert(at == content.Length);
            return new EncodedBody(content, boundary, false, false);
        }
        var single = text ?? html ?? throw new ArgumentException("A message needs a text or an HTML body.");
        var bytes = new byte[single.Length];
        single.CopyTo(bytes);
        return new EncodedBody(bytes, null, text is null, single.Quoted);
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> target)
    {
        source.CopyTo(target);
        return source.Length;
    }

    private static int Delimiter(Span<byte> target, string boundary, ReadOnlySpan<byte> end)
    {
        var at = Copy("--"u8, target);
        at += Encoding.ASCII.GetBytes(boundary, target[at..]);
        return at + Copy(end, target[at..]);
    }

    /// <summary>
    /// One part's content, ending with CRLF (the CRLF before a boundary belongs to the boundary): the text itself
    /// when it is 7bit-safe (written straight into the message, no intermediate copy), else its quoted-printable form.
    /// </summary>
    private readonly struct Part
    {
        private readonly string? _text;
        private readonly MergedBody? _merged;
        private readonly byte[]? _quoted;
        private readonly bool _addNewLine;

        /// <summary>A merged body: written from its template's literal bytes and its values when it is 7bit, else as text.</summary>
        public Part(MergedBody merged)
        {
            var length = merged.SevenBitLength();
            if (length < 0)
            {
                this = new Part(merged.Text);
                return;
            }
            _merged = merged;
            Length = length;
        }

        public Part(string text)
        {
            // A bare CR or LF would reach the SMTP server as is (7bit) or change meaning (quoted-printable).
            var span = text.AsSpan();
            var pairs = span.Count("\r\n");
            if (span.Count('\n') != pairs || span.Count('\r') != pairs)
            {
                text = text.ReplaceLineEndings("\r\n");
            }
            _text = text;
            if (System.Text.Ascii.IsValid(text) && LongestLine(text) <= MaxLineLength)
            {
                _addNewLine = !text.EndsWith("\r\n", StringComparison.Ordinal);
                Length = text.Length + (_addNewLine ? 2 : 0);
                return;
            }
            var utf8 = Encoding.UTF8.GetBytes(text);
            var encoder = new QuotedPrintableEncoder();
            var quoted = new byte[encoder.EstimateOutputLength(utf8.Length)];
            var length = encoder.Flush(utf8, 0, utf8.Length, quoted);
            // The encoder writes LF line endings; SMTP needs CRLF.
            var crlf = new Unix2DosFilter().Flush(quoted, 0, length, out var index, out var crlfLength);
            _quoted = crlf.AsSpan(index, crlfLength).ToArray();
            _addNewLine = !_quoted.AsSpan().EndsWith("\r\n"u8);
            Length = _quoted.Length + (_addNewLine ? 2 : 0);
        }

        public bool Quoted => _quoted is not null;

        public int Length { get; }

        public int CopyTo(Span<byte> target)
        {
            if (_merged is not null)
            {
                return _merged.WriteSevenBit(target);
            }
            var at = _quoted is null ? Encoding.ASCII.GetBytes(_text!, target) : Copy(_quoted, target);
            return _addNewLine ? at + Copy("\r\n"u8, target[at..]) : at;
        }
    }

    private static int LongestLine(ReadOnlySpan<char> text)
    {
        var longest = 0;
        while (true)
        {
            var end = text.IndexOf("\r\n");
            longest = Math.Max(longest, end < 0 ? text.Length : end);
            if (end < 0)
            {
                return longest;
            }
            text = text[(end + 2)..];
        }
    }

    /// <summary>Like MimeKit's own boundaries: unguessable, so no merged value can end a part early.</summary>
    private static string NewBoundary()
    {
        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        return "=-" + Convert.ToBase64String(random);
    }

    /// <summary>The content after the entity's header fields.</summary>
    public ReadOnlyMemory<byte> Content => _content;

    /// <summary>Already encoded for any transport.</summary>
    public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
    {
    }

    public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        base.WriteTo(options, stream, contentOnly, cancellationToken);
        EncodedContent.Write(_content, options, stream, cancellationToken);
    }

    public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        await base.WriteToAsync(options, stream, contentOnly, cancellationToken);
        await EncodedContent.WriteAsync(_content, options, stream, cancellationToken);
    }
}

/// <summary>
/// Writes content already encoded with CRLF line ends the way MimeKit's writers expect: as is for the wire, through
/// MimeKit's Dos2Unix filter when the caller asked for LF line ends.
/// </summary>
internal static class EncodedContent
{
    public static void Write(byte[] content, FormatOptions options, Stream stream, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (options.NewLineFormat == NewLineFormat.Dos)
        {
            stream.Write(content);
            return;
        }
        using var filtered = new FilteredStream(stream);
        filtered.Add(new Dos2UnixFilter());
        filtered.Write(content, 0, content.Length, cancellationToken);
        filtered.Flush(cancellationToken);
    }

    public static async Task WriteAsync(byte[] content, FormatOptions options, Stream stream, CancellationToken cancellationToken)
    {
        if (options.NewLineFormat == NewLineFormat.Dos)
        {
            await stream.WriteAsync(content, cancellationToken);
            return;
        }
        using var filtered = new FilteredStream(stream);
        filtered.Add(new Dos2UnixFilter());
        await filtered.WriteAsync(content, cancellationToken);
        await filtered.FlushAsync(cancellationToken);
    }
}

/// <summary>
/// A body encoded for the wire (CRLF, 7-bit): <paramref name="Content"/> follows the entity's header fields, which are
/// Content-Type multipart/alternative with <paramref name="Boundary"/> when it is set, else text/plain or (when
/// <paramref name="Html"/>) text/html in UTF-8, 7bit or (when <paramref name="Quoted"/>) quoted-printable.
/// </summary>
public readonly record struct EncodedBody(byte[] Content, string? Boundary, bool Html, bool Quoted);
