using System.Diagnostics;
using System.Text;

namespace Newsletter.TestSupport;

/// <summary>
/// Postfix's <c>smtp-sink</c> (Debian package postfix) on a free loopback port: accepts and discards mail, or, with
/// <c>-f rcpt</c> / <c>-r rcpt</c>, answers a command with a hard (5xx) or soft (4xx) error, which maildev cannot do.
/// Start it with <see cref="StartAsync"/>; dispose to stop it.
/// </summary>
public sealed class SmtpSinkServer : IAsyncDisposable
{
    private readonly StringBuilder _output = new();
    private Process? _process;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>Path of smtp-sink, or null when postfix is not installed (./test.sh installs it).</summary>
    public static string? Executable => ProcessRunner.Which("smtp-sink", "/usr/sbin", "/usr/lib/postfix/sbin");

    /// <param name="options">Extra smtp-sink options, e.g. <c>["-f", "rcpt"]</c> to reject every recipient with 5xx.</param>
    public static async Task<SmtpSinkServer> StartAsync(params string[] options)
    {
        var exe = Executable ?? throw new InvalidOperationException("smtp-sink is not installed (apt-get install postfix; ./test.sh does it).");
        var sink = new SmtpSinkServer();
        for (var attempt = 1; ; attempt++)
        {
            sink.Port = FreePort.Get();
            var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var o in options)
            {
                psi.ArgumentList.Add(o);
            }
            if (ProcessRunner.IsRoot)
            {
                psi.ArgumentList.Add("-u");
                psi.ArgumentList.Add("nobody");
            }
            psi.ArgumentList.Add($"{sink.Host}:{sink.Port}");
            psi.ArgumentList.Add("256");
            sink._process = Process.Start(psi)!;
            sink._process.OutputDataReceived += (_, e) => sink.Append(e.Data);
            sink._process.ErrorDataReceived += (_, e) => sink.Append(e.Data);
            sink._process.BeginOutputReadLine();
            sink._process.BeginErrorReadLine();
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(10) && !sink._process.HasExited)
            {
                if (await FreePort.IsAcceptingAsync(sink.Port))
                {
                    ProcessRunner.StartOrphanReaper($"/proc/{sink._process.Id}", $"kill {sink._process.Id}");
                    return sink;
                }
                await Task.Delay(50);
            }
            sink.Stop();
            if (attempt >= 3)
            {
                throw new InvalidOperationException($"smtp-sink did not start on {sink.Host}:{sink.Port}: {sink._output}");
            }
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private void Stop()
    {
        try
        {
            if (_process is { HasExited: false })
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process?.Dispose();
        _process = null;
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }
}
