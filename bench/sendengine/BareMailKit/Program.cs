// The library ceiling for bench/sendengine/run.sh: sends COUNT messages over CONNECTIONS reused MailKit connections
// into an SMTP server, with no database. Each message is built the way Send Engine builds one (a new MimeMessage per
// recipient: From, To, Subject, Date, Message-ID, List-Unsubscribe, List-Unsubscribe-Post, multipart/alternative with
// the recipient's address merged into both bodies), and each socket is connected with TCP_NODELAY like
// ServiceDefaults' SmtpConnector.
//
//   BareMailKit --host 127.0.0.1 --port 2525 --connections 8 --count 100000 --html body.html --text body.txt [--mode send|write|build]
//
// --mode write only serialises each message to Stream.Null and --mode build only builds it (no SMTP), to split the cost
// or to check for leaks (run with DOTNET_GCHeapHardLimit).
//
// Prints one line: BENCH name=bare-mailkit messages=N seconds=S rate=R errors=E connections=C cpu_s=T (T: this process's
// user+system CPU seconds, start-up included, for run.sh --cpu)
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using MimeKit.Utils;

var host = "127.0.0.1";
var mode = "send";
var port = 2525;
var connections = 8;
var count = 100_000;
string html = "<p>Hello {{ email }}</p>", text = "Hello {{ email }}";
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--host": host = args[i + 1]; break;
        case "--mode": mode = args[i + 1]; break;
        case "--port": port = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--connections": connections = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--count": count = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--html": html = File.ReadAllText(args[i + 1]); break;
        case "--text": text = File.ReadAllText(args[i + 1]); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}

var from = new MailboxAddress("Bench", "newsletter@bench.local");
var next = -1;
var errors = 0;

async Task<SmtpClient> ConnectAsync()
{
    var client = new SmtpClient { Timeout = 30_000 };
    var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await socket.ConnectAsync(host, port);
    await client.ConnectAsync(socket, host, port, SecureSocketOptions.None);
    return client;
}

MimeMessage Build(int n)
{
    var email = $"bench-{n}@example.test";
    var unsubscribe = $"http://127.0.0.1/newsletter/unsubscribe?token=t{n:x8}";
    var message = new MimeMessage();
    // A new address per message: InternetAddressList subscribes to the address's Changed event, so one shared
    // MailboxAddress would keep every message it was added to alive.
    message.From.Add(new MailboxAddress(from.Name, from.Address));
    message.To.Add(MailboxAddress.Parse(email));
    message.Subject = "Bench newsletter for " + email;
    message.Date = DateTimeOffset.UtcNow;
    message.MessageId = MimeUtils.GenerateMessageId("bench.local");
    message.Headers.Add(HeaderId.ListUnsubscribe, "<" + unsubscribe + ">");
    message.Headers.Add(HeaderId.ListUnsubscribePost, "List-Unsubscribe=One-Click");
    var body = new BodyBuilder
    {
        TextBody = text.Replace("{{ email }}", email, StringComparison.Ordinal).Replace("{{ unsubscribe_url }}", unsubscribe, StringComparison.Ordinal),
        HtmlBody = html.Replace("{{ email }}", System.Net.WebUtility.HtmlEncode(email), StringComparison.Ordinal)
            .Replace("{{ unsubscribe_url }}", System.Net.WebUtility.HtmlEncode(unsubscribe), StringComparison.Ordinal),
    };
    message.Body = body.ToMessageBody();
    return message;
}

async Task WorkerAsync()
{
    using var client = await ConnectAsync();
    int n;
    while ((n = Interlocked.Increment(ref next)) < count)
    {
        try
        {
            var m = Build(n);
            if (mode == "build")
            {
                continue;
            }
            if (mode == "write")
            {
                await m.WriteToAsync(Stream.Null);
                continue;
            }
            await client.SendAsync(m);
        }
        catch (SmtpCommandException)
        {
            Interlocked.Increment(ref errors);
        }
    }
    await client.DisconnectAsync(true);
}

var clock = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(WorkerAsync)));
clock.Stop();
var seconds = clock.Elapsed.TotalSeconds;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"BENCH name=bare-mailkit messages={count} seconds={seconds:F2} rate={count / seconds:F0} errors={errors} connections={connections} cpu_s={Environment.CpuUsage.TotalTime.TotalSeconds:F2}"));
return errors == 0 ? 0 : 1;
