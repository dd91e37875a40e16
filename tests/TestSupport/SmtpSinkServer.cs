using System.Diagnostics;

namespace Newsletter.TestSupport;

/// <summary>
/// Postfix's <c>smtp-sink</c> (Debian package postfix) on a free loopback port: accepts and discards mail, or, with
/// <c>-f rcpt</c> / <c>-r rcpt</c>, answers a command with a hard (5xx) or soft (4xx) error, which maildev cannot do.
/// Start it with <see cref="StartAsync(string[])"/>; dispose to stop it. <see cref="StartRejectingUnknownUsersAsync"/>
/// starts an aiosmtpd server with a mailbox-level rejection instead.
/// </summary>
public sealed class SmtpSinkServer : IAsyncDisposable
{
    private readonly ProcessOutput _output = new();
    private ServerProcess? _process;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>Path of smtp-sink, or null when postfix is not installed (./test.sh installs it).</summary>
    public static string? Executable => ProcessRunner.Which("smtp-sink", "/usr/sbin", "/usr/lib/postfix/sbin");

    /// <param name="options">Extra smtp-sink options, e.g. <c>["-f", "rcpt"]</c> to reject every recipient with 5xx.</param>
    public static Task<SmtpSinkServer> StartAsync(params string[] options)
    {
        var exe = Executable ?? throw new InvalidOperationException("smtp-sink is not installed (apt-get install postfix; ./test.sh does it).");
        return StartAsync("smtp-sink", port =>
        {
            var psi = new ProcessStartInfo(exe);
            foreach (var o in options)
            {
                psi.ArgumentList.Add(o);
            }
            if (ProcessRunner.IsRoot)
            {
                psi.ArgumentList.Add("-u");
                psi.ArgumentList.Add("nobody");
            }
            psi.ArgumentList.Add($"127.0.0.1:{port}");
            psi.ArgumentList.Add("256");
            return psi;
        });
    }

    /// <summary>The system Python with Debian's python3-aiosmtpd, or null when it is not installed (./test.sh installs it).</summary>
    public static string? AiosmtpdPython =>
        File.Exists("/usr/bin/python3") && Directory.Exists("/usr/lib/python3/dist-packages/aiosmtpd") ? "/usr/bin/python3" : null;

    /// <summary>
    /// An aiosmtpd server (tests/TestSupport/smtp/rejecting_smtp.py) that accepts mail but rejects recipients whose
    /// local part starts with "unknown" with <c>550 5.1.1 ... User unknown</c>: smtp-sink can only answer 5.3.0.
    /// </summary>
    public static Task<SmtpSinkServer> StartRejectingUnknownUsersAsync()
    {
        var python = AiosmtpdPython ?? throw new InvalidOperationException("python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd; ./test.sh does it).");
        var script = Path.Combine(RepoPaths.Root, "tests", "TestSupport", "smtp", "rejecting_smtp.py");
        return StartAsync("aiosmtpd", port => new ProcessStartInfo(python) { ArgumentList = { script, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) } });
    }

    private static async Task<SmtpSinkServer> StartAsync(string name, Func<int, ProcessStartInfo> command)
    {
        var sink = new SmtpSinkServer();
        for (var attempt = 1; ; attempt++)
        {
            sink.Port = FreePort.Get();
            sink._process = ServerProcess.Start(command(sink.Port), sink._output);
            if (await sink._process.WaitUntilAcceptingAsync(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), sink.Port))
            {
                ProcessRunner.StartOrphanReaper($"/proc/{sink._process.Id}", $"kill {sink._process.Id}");
                return sink;
            }
            sink.Stop();
            if (attempt >= 3)
            {
                throw new InvalidOperationException($"{name} did not start on {sink.Host}:{sink.Port}: {sink._output}");
            }
        }
    }

    private void Stop()
    {
        _process?.Dispose();
        _process = null;
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }
}
