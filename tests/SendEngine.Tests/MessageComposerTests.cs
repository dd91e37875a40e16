using System.Text.Json;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;
using SendEngine.Features.Tencent;
using SendEngine.Transports;

namespace SendEngine.Tests;

/// <summary>
/// Composed messages rendered as the SMTP transport sends them (the pre-encoded <see cref="PrerenderedBody"/>) and read back
/// by MimeKit's parser, as a receiving client would; and the Tencent payload built from the same parts.
/// </summary>
public sealed class MessageComposerTests
{
    private static readonly SmtpOptions Smtp = new() { FromAddress = "news@example.test", FromName = "News" };

    private static MergeData Data(string email, string? name = null) => new(email, "http://mc.test/newsletter/unsubscribe?token=abc&x=1",
        name is null ? [] : new Dictionary<string, JsonElement> { ["first_name"] = JsonSerializer.SerializeToElement(name) });

    private static MimeMessage RoundTrip(OutgoingMessage message, NewLineFormat format = NewLineFormat.Dos) =>
        RoundTrip(SmtpTransport.ToMime(message), format);

    private static MimeMessage RoundTrip(MimeMessage message, NewLineFormat format = NewLineFormat.Dos)
    {
        using var stream = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = format }, stream);
        var raw = stream.ToArray();
        if (format == NewLineFormat.Dos)
        {
            // Every line ends with CRLF, none is longer than SMTP allows, nothing outside ASCII.
            var text = System.Text.Encoding.Latin1.GetString(raw);
            Assert.DoesNotMatch("[^\r]\n", text);
            Assert.DoesNotMatch("\r[^\n]", text);
            Assert.All(text.Split("\r\n"), line => Assert.True(line.Length <= 998, line));
            Assert.True(System.Text.Ascii.IsValid(raw));
        }
        stream.Position = 0;
        return MimeMessage.Load(stream);
    }

    /// <summary>The part's text as a client shows it (MimeKit's parser keeps the line endings it was written with).</summary>
    private static string Decoded(TextPart part) => part.Text.ReplaceLineEndings("\n").TrimEnd();

    [Fact]
    public void Reply_to_is_set_only_when_configured()
    {
        var without = new MessageComposer(Smtp, null, "S", null, "x").Compose(Data("reader@example.test"));
        var with = new MessageComposer(new SmtpOptions { FromAddress = "news@example.test", ReplyToAddress = "desk@example.test" }, null, "S", null, "x")
            .Compose(Data("reader@example.test"));

        Assert.Empty(RoundTrip(without).ReplyTo);
        Assert.Equal("desk@example.test", Assert.Single(RoundTrip(with).ReplyTo.Mailboxes).Address);
    }

    [Fact]
    public void Ascii_text_and_html_go_as_7bit_multipart_alternative_with_merge_tags_applied()
    {
        var composer = new MessageComposer(Smtp, null, "Hi {{ first_name }}", "<p>Hi {{ first_name }}</p>\n<a href=\"{{ unsubscribe_url }}\">x</a>", "Hi {{ first_name }}\nLeave: {{ unsubscribe_url }}");
        var message = composer.Compose(Data("reader@example.test", "Ann <b>"));

        var parsed = RoundTrip(message);

        Assert.Equal(message.MessageId, parsed.MessageId);
        Assert.Equal("News", Assert.Single(parsed.From.Mailboxes).Name);
        Assert.Equal("Hi Ann <b>", parsed.Subject);
        Assert.Equal("<http://mc.test/newsletter/unsubscribe?token=abc&x=1>", parsed.Headers[HeaderId.ListUnsubscribe]);
        Assert.Equal("List-Unsubscribe=One-Click", parsed.Headers[HeaderId.ListUnsubscribePost]);
        var alternative = Assert.IsType<MultipartAlternative>(parsed.Body);
        Assert.Equal(2, alternative.Count);
        var text = Assert.IsType<TextPart>(alternative[0]);
        var html = Assert.IsType<TextPart>(alternative[1]);
        Assert.True(text.IsPlain);
        Assert.True(html.IsHtml);
        Assert.Equal(ContentEncoding.SevenBit, text.ContentTransferEncoding);
        Assert.Equal("utf-8", text.ContentType.Charset);
        Assert.Equal("Hi Ann <b>\nLeave: http://mc.test/newsletter/unsubscribe?token=abc&x=1", Decoded(text));
        Assert.Equal("<p>Hi Ann &lt;b&gt;</p>\n<a href=\"http://mc.test/newsletter/unsubscribe?token=abc&amp;x=1\">x</a>", Decoded(html));
    }

    [Fact]
    public void Non_ascii_and_long_lines_are_quoted_printable_and_decode_to_the_merged_text()
    {
        var longLine = new string('a', 1500);
        var composer = new MessageComposer(Smtp, null, "Grüße", "<p>Grüße {{ first_name }} 🎉</p><p>" + longLine + "</p>", "Grüße {{ first_name }}\r\n" + longLine);
        var message = composer.Compose(Data("reader@example.test", "Zoë\nline two"));

        var parsed = RoundTrip(message);

        Assert.Equal("Grüße", parsed.Subject);
        var alternative = Assert.IsType<MultipartAlternative>(parsed.Body);
        var text = (TextPart)alternative[0];
        var html = (TextPart)alternative[1];
        Assert.Equal(ContentEncoding.QuotedPrintable, text.ContentTransferEncoding);
        Assert.Equal(ContentEncoding.QuotedPrintable, html.ContentTransferEncoding);
        // A bare LF inside a merged value becomes CRLF like the template's own line breaks.
        Assert.Equal("Grüße Zoë\nline two\n" + longLine, Decoded(text));
        Assert.Equal("<p>Grüße Zo&#235;\nline two 🎉</p><p>" + longLine + "</p>", Decoded(html));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_single_body_is_the_message_body_itself(bool html)
    {
        var composer = new MessageComposer(Smtp, null, "Only one", html ? "<p>{{ email }}</p>" : null, html ? null : "To {{ email }}");
        var message = composer.Compose(Data("reader@example.test"));

        var part = Assert.IsType<TextPart>(RoundTrip(message).Body);

        Assert.Equal(html, part.IsHtml);
        Assert.Equal(ContentEncoding.SevenBit, part.ContentTransferEncoding);
        Assert.Equal(html ? "<p>reader@example.test</p>" : "To reader@example.test", Decoded(part));
    }

    [Fact]
    public void Written_with_unix_line_endings_it_still_parses()
    {
        var composer = new MessageComposer(Smtp, null, "S", "<p>é {{ email }}</p>", "line one\nline two");
        var message = composer.Compose(Data("reader@example.test"));

        var alternative = Assert.IsType<MultipartAlternative>(RoundTrip(message, NewLineFormat.Unix).Body);

        Assert.Equal("line one\nline two", Decoded((TextPart)alternative[0]));
        Assert.Equal("<p>é reader@example.test</p>", Decoded((TextPart)alternative[1]));
    }

    [Fact]
    public void Bare_line_feeds_given_directly_are_normalised()
    {
        var parsed = RoundTrip(new MimeMessage { Body = PrerenderedBody.Create("one\ntwo\rthree", "<p>a</p>\n<p>b</p>") });

        var alternative = Assert.IsType<MultipartAlternative>(parsed.Body);
        Assert.Equal("one\ntwo\nthree", Decoded((TextPart)alternative[0]));
        Assert.Equal("<p>a</p>\n<p>b</p>", Decoded((TextPart)alternative[1]));
    }

    [Fact]
    public void Line_breaks_in_merged_values_cannot_add_header_fields()
    {
        var composer = new MessageComposer(Smtp, null, "Hi {{ first_name }}", "<p>x</p>", "x");
        var message = composer.Compose(Data("reader@example.test", "Ann\r\nBcc: evil@example.test\r\nX-Injected: 1"));

        var parsed = RoundTrip(message);

        Assert.Empty(parsed.Bcc);
        Assert.False(parsed.Headers.Contains("X-Injected"));
        Assert.DoesNotContain('\n', parsed.Subject ?? "");
        Assert.StartsWith("Hi Ann", parsed.Subject);
    }

    [Fact]
    public void Each_message_gets_its_own_boundary()
    {
        var composer = new MessageComposer(Smtp, null, "S", "<p>x</p>", "x");

        var first = Assert.IsType<MultipartAlternative>(RoundTrip(composer.Compose(Data("a@example.test"))).Body);
        var second = Assert.IsType<MultipartAlternative>(RoundTrip(composer.Compose(Data("b@example.test"))).Body);

        Assert.NotEqual(first.Boundary, second.Boundary);
    }

    [Fact]
    public void Tencent_payload_takes_the_merged_parts()
    {
        var composer = new MessageComposer(Smtp, null, "Hi {{ email }}", "<p>{{ email }}</p>", "T {{ email }}");
        var message = composer.Compose(Data("reader@example.test"));

        using var payload = JsonDocument.Parse(TencentSesTransport.BuildPayload(message, new TencentSesOptions()));

        var simple = payload.RootElement.GetProperty("Simple");
        Assert.Equal("<p>reader@example.test</p>", System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(simple.GetProperty("Html").GetString()!)));
        Assert.Equal("T reader@example.test", System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(simple.GetProperty("Text").GetString()!)));
        Assert.Equal("Hi reader@example.test", payload.RootElement.GetProperty("Subject").GetString());
        Assert.Equal("News <news@example.test>", payload.RootElement.GetProperty("FromEmailAddress").GetString());
        Assert.Equal("reader@example.test", Assert.Single(payload.RootElement.GetProperty("Destination").EnumerateArray()).GetString());
        Assert.Equal("<" + message.MessageId + ">", payload.RootElement.GetProperty("SmtpMessageId").GetString());
        var headers = JsonSerializer.Deserialize<Dictionary<string, string>>(payload.RootElement.GetProperty("SmtpHeaders").GetString()!)!;
        Assert.Equal("<http://mc.test/newsletter/unsubscribe?token=abc&x=1>", headers["List-Unsubscribe"]);
        Assert.Equal("List-Unsubscribe=One-Click", headers["List-Unsubscribe-Post"]);
    }

    [Fact]
    public void Merge_templates_handle_adjacent_leading_trailing_repeated_and_unknown_tags()
    {
        var template = MergeTemplate.Parse("{{ email }}{{ nope }}-{{first_name}}\n{{ email }}", html: true, crlf: true);

        Assert.Equal("a@x.test-Ann &amp; Bob\r\nline\r\na@x.test", template.Render(Data("a@x.test", "Ann & Bob\nline")));
        Assert.Equal("no tags", MergeTemplate.Parse("no tags", html: false).Render(Data("a@x.test")));
    }

    /// <summary>
    /// A bulk body is written from its template's literal bytes and the values when it is 7bit (no merged string in
    /// between): the bytes must be exactly those of the merged text encoded, and whatever makes the part
    /// quoted-printable must be noticed across the literals and the values (a value outside ASCII or with a line
    /// break, a line made longer than 998 octets by a value), or the message would break SMTP's line limit.
    /// </summary>
    [Theory]
    [InlineData("Hi {{ first_name }},\nbye\n", "Ann")]
    [InlineData("Hi {{ first_name }}", "Ann")] // no final line break: one is added
    [InlineData("Hi\n{{ first_name }}", "")] // ends with an empty value after a line break
    [InlineData("{{ first_name }}", "")] // nothing at all
    [InlineData("no tags\n", "Ann")]
    [InlineData("Hi {{ first_name }}\n", "Zoë")] // outside ASCII: quoted-printable
    [InlineData("Hi {{ first_name }}\n", "Ann\nBob")] // a line break in a value
    [InlineData("Hi {{ first_name }}\n", "Ann\tBob")]
    [InlineData("{{ first_name }}{{ first_name }}\n", "<&>")] // escaped in HTML
    [InlineData("a\n{{ first_name }}\nb", "LONG990")] // a value alone on a line of 990: 7bit
    [InlineData("a\nxxxxxxxxxx{{ first_name }}\nb", "LONG990")] // the same line with a literal before it: 1000, quoted
    [InlineData("a\n{{ first_name }}xxxxxxxxxx", "LONG990")] // and after it, up to the end
    [InlineData("a\n{{ first_name }}{{ first_name }}", "LONG500")] // two values on one line
    [InlineData("LITERAL1000\n{{ first_name }}", "Ann")] // a literal's own line too long: never 7bit
    [InlineData("Grüße {{ first_name }}\n", "Ann")] // a literal outside ASCII: never 7bit
    public void A_merged_body_written_from_its_template_is_the_merged_text_encoded(string template, string value)
    {
        static string Expand(string s) => s.Replace("LONG990", new string('v', 990)).Replace("LONG500", new string('w', 500))
            .Replace("LITERAL1000", new string('l', 1000));
        template = Expand(template);
        value = Expand(value);
        foreach (var html in new[] { false, true })
        {
            var composer = new MessageComposer(Smtp, null, "s", html ? template : null, html ? null : template);
            var message = composer.Compose(Data("a@x.test", value), 1);
            var direct = PrerenderedBody.Encode(message);
            var fromText = PrerenderedBody.Encode(html ? null : message.TextBody, html ? message.HtmlBody : null);
            Assert.Equal(fromText.Quoted, direct.Quoted);
            Assert.Equal(System.Text.Encoding.ASCII.GetString(fromText.Content), System.Text.Encoding.ASCII.GetString(direct.Content));
        }
        // Both bodies: the same parts around a new boundary.
        var both = new MessageComposer(Smtp, null, "s", template, template).Compose(Data("a@x.test", value), 1);
        var encoded = PrerenderedBody.Encode(both);
        var expected = PrerenderedBody.Encode(both.TextBody, both.HtmlBody);
        Assert.Equal(System.Text.Encoding.ASCII.GetString(expected.Content).Replace(expected.Boundary!, "B"),
            System.Text.Encoding.ASCII.GetString(encoded.Content).Replace(encoded.Boundary!, "B"));
    }

    [Fact]
    public void Each_message_gets_its_own_From_address_object()
    {
        // A MailboxAddress shared by a job's messages kept all of them alive through its Changed event (docs/send-engine.md).
        // Bulk messages go as bytes (WireMessage, no MailboxAddress at all); the MimeKit model is what the other paths use.
        var composer = new MessageComposer(Smtp, null, "S", null, "x");

        var first = SmtpTransport.ToMime(ViaMimeKit(composer.Compose(Data("a@example.test"))));
        var second = SmtpTransport.ToMime(ViaMimeKit(composer.Compose(Data("b@example.test"))));

        Assert.NotSame(first.From.Mailboxes.Single(), second.From.Mailboxes.Single());
    }

    [Fact]
    public void A_wire_message_made_into_the_next_one_is_written_exactly_as_a_new_one()
    {
        // A transport session keeps one WireMessage and writes each message into it: nothing of the previous one may remain.
        var composer = new MessageComposer(Smtp, null, "Hello {{ first_name }}", "<p>Hi {{ first_name }}, a longer html body</p>", "Hi {{ first_name }}");
        var first = composer.Compose(Data("first-reader@example.test", "Annabelle"));
        var second = composer.Compose(Data("b@example.test", "Bo"));

        var reused = Assert.IsType<WireMessage>(SmtpTransport.ToMime(first));
        var firstBytes = Written(reused);
        Assert.Same(reused, SmtpTransport.ToMime(second, reused));

        Assert.Equal(Written(SmtpTransport.ToMime(second)), Written(reused));
        Assert.NotEqual(firstBytes, Written(reused));
        Assert.Equal("b@example.test", reused.Recipient.Address);
        var parsed = RoundTrip(reused);
        Assert.Equal("Hello Bo", parsed.Subject);
        Assert.Equal("b@example.test", Assert.Single(parsed.To.Mailboxes).Address);
        Assert.Contains("Hi Bo", parsed.TextBody);

        // Each rendering draws a new multipart boundary: compared with it replaced.
        static string Written(MimeMessage message)
        {
            using var stream = new MemoryStream();
            message.WriteTo(FormatOptions.Default, stream);
            var text = System.Text.Encoding.ASCII.GetString(stream.ToArray());
            var boundary = System.Text.RegularExpressions.Regex.Match(text, "boundary=\"([^\"]+)\"").Groups[1].Value;
            Assert.NotEmpty(boundary);
            return text.Replace(boundary, "BOUNDARY", StringComparison.Ordinal);
        }
    }

    /// <summary>The same message without the bulk composer's rendering: built through MimeKit's model.</summary>
    private static OutgoingMessage ViaMimeKit(OutgoingMessage m) => new()
    {
        From = m.From, To = m.To, ReplyTo = m.ReplyTo, Subject = m.Subject, MessageId = m.MessageId, Date = m.Date, Headers = m.Headers,
        TextBody = m.TextBody, HtmlBody = m.HtmlBody, EnvelopeFrom = m.EnvelopeFrom,
    };

    [Theory]
    [InlineData("Weekly for {{ first_name }}", "Ann")]
    [InlineData("Grüße an {{ first_name }}", "Zoë")]
    [InlineData("Static subject, a long one that MimeKit would fold: lorem ipsum dolor sit amet consectetur adipiscing elit sed do", null)]
    [InlineData("=?utf-8?q?looks_encoded?= {{ first_name }}", "Ann")]
    public void A_bulk_message_is_written_as_bytes_and_reads_back_like_the_MimeKit_built_one(string subject, string? name)
    {
        var smtp = new SmtpOptions { FromAddress = "news@example.test", FromName = "Zoë's News, \"Weekly\"", ReplyToAddress = "desk@example.test" };
        var composer = new MessageComposer(smtp, null, subject, "<p>Hi {{ first_name }} ✓</p>\n<a href=\"{{ unsubscribe_url }}\">x</a>",
            "Hi {{ first_name }}\nLeave: {{ unsubscribe_url }}",
            [new("List-Id", "<list.example.test>"), new("Feedback-ID", "c1:t1:bulk:news")], null,
            new MessageAddress("Zoë's News, \"Weekly\"", "news@example.test"));
        var message = composer.Compose(Data("reader+tag@example.test", name));

        var wire = SmtpTransport.ToMime(message);
        var viaMimeKit = RoundTrip(SmtpTransport.ToMime(ViaMimeKit(message)));
        var parsed = RoundTrip(wire);

        Assert.IsType<WireMessage>(wire);
        Assert.Equal(viaMimeKit.From.ToString(), parsed.From.ToString());
        Assert.Equal("Zoë's News, \"Weekly\"", Assert.Single(parsed.From.Mailboxes).Name);
        Assert.Equal("reader+tag@example.test", Assert.Single(parsed.To.Mailboxes).Address);
        Assert.Equal("desk@example.test", Assert.Single(parsed.ReplyTo.Mailboxes).Address);
        Assert.Equal(viaMimeKit.Subject, parsed.Subject);
        if (!subject.StartsWith("=?", StringComparison.Ordinal))
        {
            // (Text that looks like an encoded word is decoded by readers either way, as MimeKit writes it as is.)
            Assert.Equal(message.Subject, parsed.Subject);
        }
        Assert.Equal(message.MessageId, parsed.MessageId);
        Assert.Equal(message.Date.ToUnixTimeSeconds(), parsed.Date.ToUnixTimeSeconds());
        foreach (var field in new[] { "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID" })
        {
            Assert.Equal(viaMimeKit.Headers[field], parsed.Headers[field]);
        }
        Assert.Equal(new Version(1, 0), parsed.MimeVersion);
        var alternative = Assert.IsType<MultipartAlternative>(parsed.Body);
        Assert.Equal("Hi " + name + "\nLeave: http://mc.test/newsletter/unsubscribe?token=abc&x=1", Decoded((TextPart)alternative[0]));
        var expected = Assert.IsType<MultipartAlternative>(viaMimeKit.Body);
        Assert.Equal(Decoded((TextPart)expected[1]), Decoded((TextPart)alternative[1]));
        // Every header field once, and no header line MimeKit would not have written.
        Assert.Equal(viaMimeKit.Headers.Select(h => h.Field.ToLowerInvariant()).Order(), parsed.Headers.Select(h => h.Field.ToLowerInvariant()).Order());
    }

    [Theory]
    [InlineData("Hi {{ first_name }}", "Ann", true)]
    [InlineData("Grüße an {{ first_name }}, a subject long enough to be folded by MimeKit's encoder: lorem ipsum", "Zoë  with\ttabs ", true)]
    [InlineData("Text only {{ first_name }}", "Ann", false)]
    public async Task A_signed_bulk_message_is_written_as_bytes_and_dkimverify_and_MimeKit_accept_its_signature(string subject, string name, bool html)
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var signer = MessageComposer.CreateSigner(new DkimOptions { Domain = "example.test", Selector = "s1", PrivateKey = rsa.ExportRSAPrivateKeyPem() })!;
        // Runs of spaces and tabs, spaces at line ends and empty lines at the end: what relaxed canonicalization changes.
        var composer = new MessageComposer(new SmtpOptions { FromAddress = "news@example.test", FromName = "Zoë's News" }, signer, subject,
            html ? "<p>Hi  {{ first_name }}\t!</p>   \n\n<p>{{ unsubscribe_url }}</p>\n\n\n" : null,
            "Hi {{ first_name }}  \n\tindented\n\n\n", [new("List-Id", "<list.example.test>"), new("Feedback-ID", "c1:t1:bulk:news")]);
        var message = composer.Compose(Data("reader@example.test", name));

        var mime = SmtpTransport.ToMime(message);
        using var stream = new MemoryStream();
        await mime.WriteToAsync(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, stream, TestContext.Current.CancellationToken);
        var raw = stream.ToArray();
        var key = "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo());

        Assert.IsType<WireMessage>(mime);
        var (passed, output) = await Newsletter.TestSupport.DkimVerifier.VerifyWithKeyAsync(raw, key);
        Assert.True(passed, output + "\n" + System.Text.Encoding.ASCII.GetString(raw));
        Assert.Contains("d=example.test s=s1", output, StringComparison.Ordinal);
        Assert.Contains("c=relaxed/relaxed", output, StringComparison.Ordinal);
        var signed = System.Text.RegularExpressions.Regex.Match(output, "h=([^ ]*)").Groups[1].Value.ToLowerInvariant().Split(':');
        Assert.Equal(["from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"], signed);
        // MimeKit's verifier agrees.
        stream.Position = 0;
        var parsed = await MimeMessage.LoadAsync(stream, TestContext.Current.CancellationToken);
        var verifier = new MimeKit.Cryptography.DkimVerifier(new FixedDkimKey(key));
        Assert.True(await verifier.VerifyAsync(parsed, parsed.Headers[parsed.Headers.IndexOf(HeaderId.DkimSignature)], TestContext.Current.CancellationToken));
        // A changed recipient or body no longer verifies.
        var text = System.Text.Encoding.ASCII.GetString(raw);
        var tampered = System.Text.Encoding.ASCII.GetBytes(text.Replace("To: reader@example.test", "To: other@example.test", StringComparison.Ordinal));
        Assert.False((await Newsletter.TestSupport.DkimVerifier.VerifyWithKeyAsync(tampered, key)).Passed);
        var body = System.Text.Encoding.ASCII.GetBytes(text.Replace("indented", "indenteD", StringComparison.Ordinal));
        Assert.False((await Newsletter.TestSupport.DkimVerifier.VerifyWithKeyAsync(body, key)).Passed);
    }

    [Fact]
    public void A_single_body_bulk_message_has_its_content_type_in_the_header_section()
    {
        var message = new MessageComposer(Smtp, null, "S", null, "Grüße {{ email }}").Compose(Data("reader@example.test"));

        var parsed = RoundTrip(SmtpTransport.ToMime(message));

        var part = Assert.IsType<TextPart>(parsed.Body);
        Assert.True(part.IsPlain);
        Assert.Equal(ContentEncoding.QuotedPrintable, part.ContentTransferEncoding);
        Assert.Equal("Grüße reader@example.test", Decoded(part));
    }

    [Fact]
    public void An_invalid_recipient_address_is_rejected_by_the_transport_not_thrown()
    {
        var message = new MessageComposer(Smtp, null, "S", null, "x").Compose(Data("not an address"));

        Assert.Throws<ParseException>(() => SmtpTransport.ToMime(message));
    }

    [Fact]
    public void With_DKIM_the_message_is_signed_over_the_unsubscribe_headers()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var signer = MessageComposer.CreateSigner(new DkimOptions { Domain = "example.test", Selector = "s1", PrivateKey = rsa.ExportRSAPrivateKeyPem() })!;
        var composer = new MessageComposer(Smtp, signer, "Hi {{ email }}", "<p>x</p>", "x");

        var parsed = RoundTrip(composer.Compose(Data("reader@example.test")));

        var signature = parsed.Headers[HeaderId.DkimSignature];
        Assert.Contains("d=example.test", signature);
        Assert.Contains("list-unsubscribe", signature, StringComparison.OrdinalIgnoreCase);
        Assert.IsType<MultipartAlternative>(parsed.Body);
    }

    [Theory]
    [InlineData("Reader 1")]
    [InlineData("Ann \"B\", Jr.")]
    [InlineData("Zoë Ünal")]
    [InlineData(null)]
    public void A_transactional_message_to_one_recipient_is_written_as_bytes_and_reads_back_like_the_MimeKit_built_one(string? name)
    {
        var request = new Newsletter.Contracts.Transactional.EmailMessage(
            Html: "<p>Hi *|NAME|* ✓</p>", Text: "Hi *|NAME|*", Subject: "Your receipt *|NAME|*", FromEmail: "shop@example.test", FromName: "The Shop",
            To: [new("reader@example.test", name, null)], Headers: new Dictionary<string, string> { ["X-Order-Id"] = "42", ["Reply-To"] = "desk@example.test" },
            Important: true, PreserveRecipients: null, BccAddress: null, Merge: null, MergeLanguage: null,
            GlobalMergeVars: [new("name", JsonSerializer.SerializeToElement("Friend"))], MergeVars: null, Metadata: null, RecipientMetadata: null,
            Attachments: null, Images: null);
        var composer = new SendEngine.Features.Transactional.TransactionalComposer(request, null, "t:transactional:x");
        var message = composer.Compose("reader@example.test", "reader@example.test", name, Guid.NewGuid(), "m1@example.test");

        var wire = SmtpTransport.ToMime(message);
        var viaMimeKit = RoundTrip(SmtpTransport.ToMime(new OutgoingMessage
        {
            From = message.From, To = message.To, ToName = message.ToName, ReplyTo = message.ReplyTo, Subject = message.Subject,
            MessageId = message.MessageId, Date = message.Date, Headers = message.Headers, TextBody = message.TextBody, HtmlBody = message.HtmlBody,
        }));
        var parsed = RoundTrip(wire);

        Assert.IsType<WireMessage>(wire);
        Assert.Equal(viaMimeKit.To.ToString(), parsed.To.ToString());
        Assert.Equal(("reader@example.test", name ?? ""), (Assert.Single(parsed.To.Mailboxes).Address, parsed.To.Mailboxes.Single().Name ?? ""));
        Assert.Equal(("shop@example.test", "The Shop"), (parsed.From.Mailboxes.Single().Address, parsed.From.Mailboxes.Single().Name));
        Assert.Equal("desk@example.test", Assert.Single(parsed.ReplyTo.Mailboxes).Address);
        Assert.Equal("Your receipt Friend", parsed.Subject);
        Assert.Equal("m1@example.test", parsed.MessageId);
        Assert.Equal(("42", XMessagePriority.Highest, MessageImportance.High), (parsed.Headers["X-Order-Id"], parsed.XPriority, parsed.Importance));
        Assert.Equal(viaMimeKit.Headers.Select(h => h.Field.ToLowerInvariant()).Order(), parsed.Headers.Select(h => h.Field.ToLowerInvariant()).Order());
        var alternative = Assert.IsType<MultipartAlternative>(parsed.Body);
        Assert.Equal("Hi Friend", Decoded((TextPart)alternative[0]));
        Assert.Equal("<p>Hi Friend ✓</p>", Decoded((TextPart)alternative[1]));

        // Attachments, or more than the recipient shown, still go through MimeKit's model.
        var withFile = new SendEngine.Features.Transactional.TransactionalComposer(request with
        {
            Attachments = [new("text/plain", "a.txt", Convert.ToBase64String("x"u8.ToArray()))],
        }, null).Compose("reader@example.test", "reader@example.test", name);
        Assert.IsNotType<WireMessage>(SmtpTransport.ToMime(withFile));
    }
}
