using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Newsletter.TestSupport;

/// <summary>A message as the SMTP server received it: the envelope (MAIL FROM, RCPT TO) and the raw bytes.</summary>
public sealed record RecordedMail(string MailFrom, IReadOnlyList<string> RcptTos, byte[] Raw)
{
    public string Text => Encoding.UTF8.GetString(Raw);
}

/// <summary>
/// An aiosmtpd server (tests/TestSupport/smtp/recording_smtp.py) on a free loopback port that keeps every message with
/// its envelope, which maildev does not show (the envelope sender): for DKIM and return-path tests. Dispose to stop it.
/// </summary>
public sealed class RecordingSmtpServer : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("smtp-rec-").FullName;
    private readonly ProcessOutput _output = new();
    private ServerProcess? _process;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    public static async Task<RecordingSmtpServer> StartAsync()
    {
        var python = SmtpSinkServer.AiosmtpdPython ?? throw new InvalidOperationException("python3-aiosmtpd is not installed (./test.sh installs it).");
        var script = Path.Combine(RepoPaths.Root, "tests", "TestSupport", "smtp", "recording_smtp.py");
        var server = new RecordingSmtpServer();
        for (var attempt = 1; ; attempt++)
        {
            server.Port = FreePort.Get();
            var psi = new ProcessStartInfo(python)
            {
                ArgumentList = { script, "--port", server.Port.ToString(CultureInfo.InvariantCulture), "--dir", server._dir },
            };
            server._process = ServerProcess.Start(psi, server._output);
            if (await server._process.WaitUntilAcceptingAsync(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), server.Port))
            {
                ProcessRunner.StartOrphanReaper(server._dir, $"kill {server._process.Id} 2>/dev/null; rm -rf {ProcessRunner.Quote(server._dir)}");
                return server;
            }
            server._process.Dispose();
            if (attempt >= 3)
            {
                throw new InvalidOperationException($"aiosmtpd did not start on {server.Host}:{server.Port}: {server._output}");
            }
        }
    }

    /// <summary>Every message received so far, in order.</summary>
    public IReadOnlyList<RecordedMail> Received()
    {
        var mails = new List<RecordedMail>();
        foreach (var json in Directory.GetFiles(_dir, "*.json").OrderBy(f => int.Parse(Path.GetFileNameWithoutExtension(f), CultureInfo.InvariantCulture)))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var raw = File.ReadAllBytes(Path.ChangeExtension(json, ".eml"));
            mails.Add(new RecordedMail(doc.RootElement.GetProperty("mail_from").GetString() ?? "",
                doc.RootElement.GetProperty("rcpt_tos").EnumerateArray().Select(e => e.GetString()!).ToList(), raw));
        }
        return mails;
    }

    /// <summary>Waits for the first message to <paramref name="recipient"/>.</summary>
    public async Task<RecordedMail> WaitForAsync(string recipient, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < (timeout ?? TimeSpan.FromSeconds(60)))
        {
            if (Received().FirstOrDefault(m => m.RcptTos.Contains(recipient, StringComparer.OrdinalIgnoreCase)) is { } mail)
            {
                return mail;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"No message to {recipient} within the timeout; received: {Received().Count}; server output: {_output}");
    }

    public ValueTask DisposeAsync()
    {
        _process?.Dispose();
        _process = null;
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>The independent DKIM check: Debian's python3-dkim (tests/TestSupport/dkim/dkim_verify.py) against a given resolver.</summary>
public static class DkimVerifier
{
    /// <summary>Path of the system Python with dkimpy and dnspython, or null when python3-dkim is not installed.</summary>
    public static string? Python =>
        File.Exists("/usr/bin/python3") && Directory.Exists("/usr/lib/python3/dist-packages/dkim") ? "/usr/bin/python3" : null;

    /// <summary>(passed, the script's line: "PASS d=… s=… h=… c=…" or "FAIL …").</summary>
    public static Task<(bool Passed, string Output)> VerifyAsync(byte[] raw, string dnsHost, int dnsPort) =>
        RunAsync(raw, "--server", dnsHost, "--port", dnsPort.ToString(CultureInfo.InvariantCulture));

    /// <summary>The same with <paramref name="txt"/> ("v=DKIM1; k=rsa; p=…") as the key record, without DNS.</summary>
    public static Task<(bool Passed, string Output)> VerifyWithKeyAsync(byte[] raw, string txt) => RunAsync(raw, "--txt", txt);

    private static async Task<(bool Passed, string Output)> RunAsync(byte[] raw, params string[] args)
    {
        var python = Python ?? throw new InvalidOperationException("python3-dkim is not installed (apt-get install python3-dkim; ./test.sh does it).");
        var psi = new ProcessStartInfo(python)
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            ArgumentList = { Path.Combine(RepoPaths.Root, "tests", "TestSupport", "dkim", "dkim_verify.py") },
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.BaseStream.WriteAsync(raw);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode == 0, ((await stdout) + (await stderr)).Trim());
    }
}
