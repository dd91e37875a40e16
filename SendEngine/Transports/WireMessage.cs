using System.Buffers;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using MimeKit.IO;
using MimeKit.IO.Filters;
using MimeKit.Utils;
using SendEngine.Composition;

namespace SendEngine.Transports;

/// <summary>
/// A bulk or simple transactional message as MailKit sends it, without MimeKit's object model: the header section and the body are bytes
/// written once by <see cref="Render"/>, and MailKit (which only sends <see cref="MimeMessage"/>s) writes them as they
/// are, when it measures the message for SIZE and when it sends it. MimeKit writes a message's header fields and then
/// its body's content; so the whole header section travels as the raw value of the first field (its name passed as a
/// field MimeKit does not interpret), and the body is an entity without header fields of its own.
/// </summary>
public sealed class WireMessage : MimeMessage
{
    private const int MaxLine = 998;
    private static readonly byte[] FirstField = "MIME-Version"u8.ToArray();

    private readonly RawSection _section;
    private readonly RawBody _body;

    private WireMessage(RawSection section, RawBody body, MailboxAddress recipient)
        : base([section])
    {
        _section = section;
        _body = body;
        Body = body;
        Recipient = recipient;
    }

    /// <summary>The envelope recipient (RCPT TO), parsed once: the message has no header fields MailKit could read it from.</summary>
    public MailboxAddress Recipient { get; private set; }

    /// <summary>Makes this message another one: a session sends one message at a time, so it keeps one instance.</summary>
    private WireMessage Become(byte[] headers, byte[] body, MailboxAddress recipient)
    {
        _section.SetRawValue(headers);
        _body.Content = body;
        Recipient = recipient;
        return this;
    }

    /// <summary>Already in its final form: nothing for MailKit to re-encode.</summary>
    public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
    {
    }

    /// <summary>
    /// The wire form of a bulk or transactional message (<see cref="MimeRendering.Wire"/>), or null when the message
    /// needs MimeKit's model: attachments or inline images, several visible recipients or a bcc copy, a non-ASCII
    /// recipient address, a recipient's display name longer than a line once encoded, or a DKIM key
    /// that is not an <see cref="RsaDkimSigner"/>. Values outside printable ASCII (an encoded subject or display name)
    /// are formatted by MimeKit's header code, once per job for the fields every message shares.
    /// </summary>
    /// <param name="reuse">
    /// A message this returned before and that nobody reads any more (the previous one of a transport session), made
    /// into this one: a <see cref="MimeMessage"/> and its body entity cost about 6 KB of allocations in a dozen address
    /// lists, event handlers, header lists and parser options, a sixth of a bulk message's (docs/performance.md).
    /// </param>
    /// <exception cref="ParseException">The recipient address is not one.</exception>
    public static WireMessage? Render(OutgoingMessage m, WireMessage? reuse = null)
    {
        if (m.Rendering is not { Wire: true } rendering || m.Attachments.Count != 0 || m.InlineImages.Count != 0
            || m.VisibleTo is not null || m.VisibleCc.Count != 0 || m.EnvelopeBcc.Count != 0
            || !IsPlain(m.To, MaxLine - 4))
        {
            return null;
        }
        var dkim = rendering.Dkim as RsaDkimSigner;
        if (rendering.Dkim is not null && (dkim is null || dkim.SignatureAlgorithm != DkimSignatureAlgorithm.RsaSha256
                || dkim.HeaderCanonicalizationAlgorithm != DkimCanonicalizationAlgorithm.Relaxed
                || dkim.BodyCanonicalizationAlgorithm != DkimCanonicalizationAlgorithm.Relaxed
                || dkim.SignaturesExpireAfter is not null || !string.IsNullOrEmpty(dkim.QueryMethod)))
        {
            return null;
        }
        // Validates the address as MimeKit's parser would (throws ParseException as the MimeKit path does).
        var recipient = new MailboxAddress(m.ToName, m.To);
        // A display name (transactional to[].name) as MimeKit encodes it (quoted or RFC 2047 words), on one line.
        var to = m.ToName is null ? m.To : recipient.ToString(FormatOptions.Default, encode: true);
        if (m.ToName is not null && !IsPlain(to, MaxLine - 4))
        {
            return null;
        }
        var body = PrerenderedBody.Encode(m);
        var w = new HeaderWriter(ArrayPool<byte>.Shared.Rent(1024));
        try
        {
            // The fields in the order MimeKit writes them; each one a signer may sign is noted with where it is.
            w.Raw(" 1.0\r\n"u8);
            w.Raw(rendering.FromField(m.From));
            w.EndField("From");
            w.Field("To", to);
            if (m.ReplyTo is not null)
            {
                w.Raw(rendering.ReplyToField(m.ReplyTo));
                w.EndField("Reply-To");
            }
            if (IsPlain(m.Subject, MaxLine - 9) && !m.Subject.Contains("=?", StringComparison.Ordinal))
            {
                w.Field("Subject", m.Subject);
            }
            else
            {
                w.Raw(rendering.SubjectField(m.Subject));
                w.EndField("Subject");
            }
            w.Field("Date", DateUtils.FormatDate(m.Date));
            w.Field("Message-ID", "<" + m.MessageId + ">");
            foreach (var header in m.Headers)
            {
                if (IsPlain(header.Value, MaxLine - header.Name.Length - 2) && !header.Value.Contains("=?", StringComparison.Ordinal))
                {
                    w.Field(header.Name, header.Value);
                }
                else
                {
                    w.Raw(MimeRendering.Format(header.Name, header.Value));
                    w.EndField(header.Name);
                }
            }
            if (body.Boundary is { } boundary)
            {
                w.Raw("Content-Type: multipart/alternative; boundary=\""u8);
                w.Ascii(boundary);
                w.Raw("\"\r\n"u8);
                w.EndField("Content-Type");
            }
            else
            {
                w.Raw(body.Html ? "Content-Type: text/html; charset=utf-8\r\n"u8 : "Content-Type: text/plain; charset=utf-8\r\n"u8);
                w.EndField("Content-Type");
                w.Raw(body.Quoted ? "Content-Transfer-Encoding: quoted-printable\r\n"u8 : "Content-Transfer-Encoding: 7bit\r\n"u8);
                w.EndField("Content-Transfer-Encoding");
            }
            var section = dkim is null ? w.Written.ToArray() : Signed(dkim, ref w, body.Content, m.Date);
            return reuse?.Become(section, body.Content, recipient) ?? new WireMessage(new RawSection(section), new RawBody(body.Content), recipient);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(w.Buffer);
        }
    }

    /// <summary>The fields a DKIM signature covers when present (Gmail's list, plus List-Id and Feedback-ID), as <see cref="SmtpTransport"/> signs through MimeKit.</summary>
    internal static readonly string[] DkimFields = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
        "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID"];

    /// <summary>
    /// The header section with a DKIM-Signature (rsa-sha256, relaxed/relaxed, RFC 6376) after the first field: the body
    /// hash over <paramref name="body"/> as sent, the signature over the fields as written, with .NET's RSA.
    /// </summary>
    private static byte[] Signed(RsaDkimSigner dkim, ref HeaderWriter w, byte[] body, DateTimeOffset date)
    {
        var written = w.Written;
        var signed = new List<string>(DkimFields.Length);
        var canonical = ArrayPool<byte>.Shared.Rent(written.Length + 1024);
        try
        {
            var at = 0;
            foreach (var name in DkimFields)
            {
                var field = name == "MIME-Version" ? "MIME-Version:1.0\r\n"u8 : w.FieldBytes(name);
                if (field.IsEmpty)
                {
                    continue;
                }
                signed.Add(name);
                at += DkimCanonical.Header(field, canonical.AsSpan(at));
            }
            var header = new StringBuilder(256)
                .Append("DKIM-Signature: v=1; a=rsa-sha256; d=").Append(dkim.Domain).Append("; s=").Append(dkim.Selector)
                .Append("; c=relaxed/relaxed");
            if (!string.IsNullOrEmpty(dkim.AgentOrUserIdentifier))
            {
                header.Append("; i=").Append(dkim.AgentOrUserIdentifier);
            }
            header.Append("; t=").Append(date.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Append(";\r\n\th=").AppendJoin(':', signed)
                .Append(";\r\n\tbh=").Append(Convert.ToBase64String(DkimCanonical.BodyHash(body)))
                .Append(";\r\n\tb=");
            var unsigned = Encoding.ASCII.GetBytes(header.ToString() + "\r\n");
            // The signature's own field last, without its final CRLF, b= empty (RFC 6376 3.7).
            at += DkimCanonical.Header(unsigned, canonical.AsSpan(at)) - 2;
            var b = Convert.ToBase64String(dkim.SignSha256(canonical.AsSpan(0, at)));
            for (var i = 0; i < b.Length; i += 72)
            {
                header.Append(i == 0 ? "" : "\r\n\t ").Append(b, i, Math.Min(72, b.Length - i));
            }
            header.Append("\r\n");
            // MIME-Version's value first (the section's first field), then the signature, then the rest.
            var first = " 1.0\r\n"u8.Length;
            var signature = Encoding.ASCII.GetBytes(header.ToString());
            var section = new byte[written.Length + signature.Length];
            written[..first].CopyTo(section);
            signature.CopyTo(section.AsSpan(first));
            written[first..].CopyTo(section.AsSpan(first + signature.Length));
            return section;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(canonical);
        }
    }

    /// <summary>Printable ASCII only (no line breaks, nothing MimeKit would encode), and short enough for one line.</summary>
    internal static bool IsPlain(string value, int max) =>
        value.Length <= max && !value.AsSpan().ContainsAnyExceptInRange((char)0x20, (char)0x7e);

    /// <summary>Appends header lines to a pooled buffer, growing it from the pool when needed; notes where each field is.</summary>
    private struct HeaderWriter(byte[] buffer)
    {
        private int _at;
        /// <summary>The end of the last noted field: the next field starts there.</summary>
        private int _fieldStart = " 1.0\r\n"u8.Length;
        private (string Name, int Start, int End)[] _fields = new (string, int, int)[16];
        private int _count;

        /// <summary>The field just written (since the previous one ended) is <paramref name="name"/>.</summary>
        public void EndField(string name)
        {
            if (_count == _fields.Length)
            {
                Array.Resize(ref _fields, _count * 2);
            }
            _fields[_count++] = (name, _fieldStart, _at);
            _fieldStart = _at;
        }

        /// <summary>The last field of that name as written, with its CRLF; empty when there is none.</summary>
        public readonly ReadOnlySpan<byte> FieldBytes(string name)
        {
            for (var i = _count - 1; i >= 0; i--)
            {
                if (string.Equals(_fields[i].Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    return Buffer.AsSpan(_fields[i].Start, _fields[i].End - _fields[i].Start);
                }
            }
            return default;
        }

        public byte[] Buffer { get; private set; } = buffer;

        public readonly ReadOnlySpan<byte> Written => Buffer.AsSpan(0, _at);

        public void Raw(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(Buffer.AsSpan(_at));
            _at += bytes.Length;
        }

        /// <summary>Text already known to be ASCII.</summary>
        public void Ascii(string text)
        {
            Ensure(text.Length);
            _at += Encoding.ASCII.GetBytes(text, Buffer.AsSpan(_at));
        }

        public void Field(string name, string value)
        {
            Ascii(name);
            Raw(": "u8);
            Ascii(value);
            Raw("\r\n"u8);
            EndField(name);
        }

        private void Ensure(int more)
        {
            if (_at + more <= Buffer.Length)
            {
                return;
            }
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Buffer.Length * 2, _at + more));
            Buffer.AsSpan(0, _at).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = bigger;
        }
    }

    /// <summary>The whole header section as one field's raw value; a field id MimeKit does not interpret.</summary>
    private sealed class RawSection(byte[] value) : Header(ParserOptions.Default, HeaderId.Unknown, "MIME-Version", FirstField, value);

    /// <summary>Content only: the entity's header fields are in the message's header section.</summary>
    private sealed class RawBody : MimeEntity
    {
        public RawBody(byte[] content) : base(new ContentType("text", "plain"))
        {
            Content = content;
            RemoveHeader("Content-Type");
        }

        public byte[] Content { get; set; }

        public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
        {
        }

        public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            EncodedContent.Write(Content, options, stream, cancellationToken);
        }

        public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            await EncodedContent.WriteAsync(Content, options, stream, cancellationToken);
        }
    }
}
