using System.Diagnostics;
using System.Text;

namespace Newsletter.TestSupport;

/// <summary>
/// The lines a server program wrote to stdout and stderr, kept across restarts of the program so that a failure
/// message can show everything it said.
/// </summary>
internal sealed class ProcessOutput
{
    private readonly StringBuilder _text = new();

    public void Append(string? line)
    {
        if (line is not null)
        {
            // Written from the process's stdout and stderr reader threads at once.
            lock (_text)
            {
                _text.AppendLine(line);
            }
        }
    }

    public override string ToString()
    {
        lock (_text)
        {
            return _text.ToString();
        }
    }
}

/// <summary>
/// A long-running server program a fixture starts (dnsmasq, dovecot, smtp-sink, the aiosmtpd scripts): its stdout and
/// stderr go into a <see cref="ProcessOutput"/>, <see cref="WaitUntilAcceptingAsync"/> waits for its ports, and
/// disposing kills it with its children.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private ServerProcess(Process process) => Process = process;

    public Process Process { get; }

    public int Id => Process.Id;

    public bool HasExited => Process.HasExited;

    /// <summary>
    /// Starts <paramref name="psi"/> (stdout and stderr redirected) and copies each line into <paramref name="output"/>;
    /// stdout lines are also handed to <paramref name="onStdoutLine"/> for programs that report on stdout.
    /// </summary>
    public static ServerProcess Start(ProcessStartInfo psi, ProcessOutput output, Action<string>? onStdoutLine = null)
    {
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start '{psi.FileName}'.");
        process.OutputDataReceived += (_, e) =>
        {
            output.Append(e.Data);
            if (e.Data is not null)
            {
                onStdoutLine?.Invoke(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) => output.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ServerProcess(process);
    }

    /// <summary>
    /// Waits until every one of <paramref name="ports"/> accepts TCP connections on 127.0.0.1 (true), or the program
    /// exits or <paramref name="timeout"/> passes (false).
    /// </summary>
    public async Task<bool> WaitUntilAcceptingAsync(TimeSpan timeout, TimeSpan pollInterval, params int[] ports)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout && !Process.HasExited)
        {
            var all = true;
            foreach (var port in ports)
            {
                if (!await FreePort.IsAcceptingAsync(port))
                {
                    all = false;
                    break;
                }
            }
            if (all)
            {
                return true;
            }
            await Task.Delay(pollInterval);
        }
        return false;
    }

    public void Dispose() => ProcessRunner.KillAndDispose(Process);
}
