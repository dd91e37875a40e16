// CPU and allocation per message of composing a bulk message and writing it as MailKit does (Prepare, the SIZE measuring
// pass, the DATA write through the dot-stuffing filter into Stream.Null), on one thread: MimeKit's model (the path
// before WireMessage, still used for messages the byte writer does not handle) against WireMessage, unsigned and
// DKIM-signed. The figures in docs/performance.md came from this.
//
//   dotnet run -c Release --project bench/sendengine/ComposeCost -- [MESSAGES]
using System.Text.Json;
using MimeKit;
using MimeKit.IO;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;
using SendEngine.Transports;

var n = int.Parse(args.Length > 0 ? args[0] : "20000");
var smtp = new SmtpOptions { FromAddress = "newsletter@bench.local", FromName = "Newsletter" };
var html = "<html><body><h1>Hello {{ first_name }}</h1>\n" + string.Concat(Enumerable.Range(1, 22).Select(i => $"<p>Paragraph {i} of this week's issue: lorem ipsum dolor sit amet, consectetur adipiscing.</p>\n")) + "<p>Sent to {{ email }}. <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>\n";
var text = "Hello {{ first_name }},\n" + string.Concat(Enumerable.Range(1, 10).Select(i => $"Paragraph {i} of this week's issue: lorem ipsum dolor sit amet, adipiscing.\n")) + "Sent to {{ email }}. Unsubscribe: {{ unsubscribe_url }}\n";
using var rsa = System.Security.Cryptography.RSA.Create(2048);
var signer = MessageComposer.CreateSigner(new DkimOptions { Domain = "bench.local", Selector = "s1", PrivateKey = rsa.ExportRSAPrivateKeyPem() })!;
MessageHeader[] extra = [new("List-Id", "<l.bench.local>"), new("Feedback-ID", "a:b:bulk:c")];
var plain = new MessageComposer(smtp, null, "Weekly for {{ first_name }}", html, text, extra);
var signed = new MessageComposer(smtp, signer, "Weekly for {{ first_name }}", html, text, extra);
var oldDkim = new MimeRendering(signer);
var format = new FormatOptions { NewLineFormat = NewLineFormat.Dos };

MimeMessage Build(string mode, int i)
{
    var data = new MergeData($"bench-{i}@example.test", $"http://127.0.0.1/newsletter/unsubscribe?token=t{i:x8}abcdefabcdefabcdefabcdefabcdef",
        JsonSerializer.Deserialize<Dictionary<string, JsonElement>>($"{{\"first_name\":\"Reader {i}\"}}")!);
    var m = (mode.EndsWith("dkim") ? signed : plain).Compose(data, i);
    if (mode.StartsWith("wire"))
    {
        return SmtpTransport.ToMime(m);
    }
    return SmtpTransport.ToMime(new OutgoingMessage
    {
        From = m.From, To = m.To, Subject = m.Subject, MessageId = m.MessageId, Date = m.Date, Headers = m.Headers,
        TextBody = m.TextBody, HtmlBody = m.HtmlBody, Rendering = mode.EndsWith("dkim") ? oldDkim : null,
    });
}

void Run(string mode, int count, bool print)
{
    var cpu0 = Environment.CpuUsage.TotalTime;
    var alloc0 = GC.GetAllocatedBytesForCurrentThread();
    long bytes = 0;
    for (var i = 0; i < count; i++)
    {
        var mime = Build(mode, i);
        // As MailKit does: Prepare, measure for SIZE, then write through the dot-stuffing filter.
        mime.Prepare(EncodingConstraint.SevenBit, 998);
        using (var measure = new MeasuringStream()) { mime.WriteTo(format, measure); bytes += measure.Length; }
        using var filtered = new FilteredStream(Stream.Null);
        filtered.Add(new MailKit.Net.Smtp.SmtpDataFilter());
        mime.WriteTo(format, filtered);
        filtered.Flush();
    }
    var cpu = (Environment.CpuUsage.TotalTime - cpu0).TotalMilliseconds / count;
    var alloc = (GC.GetAllocatedBytesForCurrentThread() - alloc0) / count;
    if (print) Console.WriteLine($"MICRO mode={mode} messages={count} cpu_ms_per_msg={cpu:F4} alloc_bytes_per_msg={alloc} bytes_per_msg={bytes / count}");
}

foreach (var mode in new[] { "mimekit", "wire", "mimekit-dkim", "wire-dkim" }) Run(mode, 1000, false);
foreach (var mode in new[] { "mimekit", "wire", "mimekit", "wire" }) Run(mode, n, true);
foreach (var mode in new[] { "mimekit-dkim", "wire-dkim", "mimekit-dkim", "wire-dkim" }) Run(mode, n / 10, true);
