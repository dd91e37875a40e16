using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Encodings;
using MimeKit.IO;
using MimeKit.IO.Filters;

namespace SendEngine.Features.Delivery;

/// <summary>
/// A message body whose MIME content is encoded once, when the message is composed: one text part, or a
/// multipart/alternative of text and HTML. MimeKit's own parts re-scan and re-encode their content each time the
/// message is written, and MailKit writes it twice (once to measure it for SIZE, once to send); here both are a copy.
/// Parts are 7bit when they are ASCII with lines of at most 998 octets, quoted-printable otherwise, so no server
/// extension (8BITMIME) is needed.
/// </summary>
public sealed class PrerenderedBody : MimeEntity
{
    private const int MaxLineLength = 998;
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

    /// <param name="text">The text body, CRLF line endings.</param>
    /// <param name="html">The HTML body, CRLF line endings.</param>
    public static PrerenderedBody Create(string? text, string? html)
    {
        if (text is not null && html is not null)
        {
            var boundary = NewBoundary();
            var (textBytes, textQuoted) = Encode(text);
            var (htmlBytes, htmlQuoted) = Encode(html);
            var delimiter = Encoding.ASCII.GetBytes("--" + boundary + "\r\n");
            var textHeaders = textQuoted ? QuotedText : SevenBitText;
            var htmlHeaders = htmlQuoted ? QuotedHtml : SevenBitHtml;
            var content = new byte[(2 * delimiter.Length) + textHeaders.Length + textBytes.Length + htmlHeaders.Length + htmlBytes.Length + 6 + 2 + boundary.Length + 4];
            var span = content.AsSpan();
            var at = 0;
            Append(span, ref at, delimiter);
            Append(span, ref at, textHeaders);
            Append(span, ref at, textBytes);
            Append(span, ref at, delimiter);
            Append(span, ref at, htmlHeaders);
            Append(span, ref at, htmlBytes);
            Append(span, ref at, "--"u8);
            at += Encoding.ASCII.GetBytes(boundary, span[at..]);
            Append(span, ref at, "--\r\n"u8);
            return new PrerenderedBody(new ContentType("multipart", "alternative") { Boundary = boundary }, content[..at], text, html);
        }
        var single = text ?? html ?? throw new ArgumentException("A message needs a text or an HTML body.");
        var (bytes, quoted) = Encode(single);
        var body = new PrerenderedBody(new ContentType("text", text is null ? "html" : "plain") { Charset = "utf-8" }, bytes, text, html);
        body.Headers.Add(HeaderId.ContentTransferEncoding, quoted ? "quoted-printable" : "7bit");
        return body;
    }

    private static void Append(Span<byte> target, ref int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(target[at..]);
        at += bytes.Length;
    }

    /// <summary>A part's content, ending with CRLF (the CRLF before a boundary belongs to the boundary).</summary>
    private static (byte[] Bytes, bool Quoted) Encode(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        if (System.Text.Ascii.IsValid(utf8) && LongestLine(utf8) <= MaxLineLength)
        {
            return (utf8.AsSpan().EndsWith("\r\n"u8) ? utf8 : [.. utf8, (byte)'\r', (byte)'\n'], false);
        }
        var encoder = new QuotedPrintableEncoder();
        var quoted = new byte[encoder.EstimateOutputLength(utf8.Length)];
        var length = encoder.Flush(utf8, 0, utf8.Length, quoted);
        // The encoder writes LF line endings; SMTP needs CRLF.
        var crlf = new Unix2DosFilter().Flush(quoted, 0, length, out var index, out var crlfLength);
        var result = crlf.AsSpan(index, crlfLength);
        return (result.EndsWith("\r\n"u8) ? result.ToArray() : [.. result, (byte)'\r', (byte)'\n'], true);
    }

    private static int LongestLine(ReadOnlySpan<byte> text)
    {
        var longest = 0;
        while (true)
        {
            var end = text.IndexOf("\r\n"u8);
            var line = end < 0 ? text.Length : end;
            longest = Math.Max(longest, line);
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

    /// <summary>Already encoded for any transport.</summary>
    public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
    {
    }

    public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        base.WriteTo(options, stream, contentOnly, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        if (options.NewLineFormat == NewLineFormat.Dos)
        {
            stream.Write(_content);
            return;
        }
        using var filtered = new FilteredStream(stream);
        filtered.Add(new Dos2UnixFilter());
        filtered.Write(_content, 0, _content.Length, cancellationToken);
        filtered.Flush(cancellationToken);
    }

    public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        await base.WriteToAsync(options, stream, contentOnly, cancellationToken);
        if (options.NewLineFormat == NewLineFormat.Dos)
        {
            await stream.WriteAsync(_content, cancellationToken);
            return;
        }
        using var filtered = new FilteredStream(stream);
        filtered.Add(new Dos2UnixFilter());
        await filtered.WriteAsync(_content, cancellationToken);
        await filtered.FlushAsync(cancellationToken);
    }
}
