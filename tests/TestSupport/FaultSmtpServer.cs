using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Newsletter.TestSupport;

/// <summary>
/// A real SMTP server that misbehaves on demand (tests/TestSupport/smtp/fault_smtp.py, aiosmtpd under Debian's
/// /usr/bin/python3): late or missing end-of-DATA replies, 4xx/5xx to MAIL, RCPT or DATA, AUTH that refuses with 535
/// until the password is changed, and a listener that can be stopped (connections refused) and started again on the
/// same port. It records every message it took (before any delay or drop), so a test can count copies.
/// A missing python3-aiosmtpd is an error, not a skip: ./test.sh installs it.
/// </summary>
public sealed class FaultSmtpServer : IAsyncDisposable
{
    private readonly ProcessOutput _output = new();
    private readonly ConcurrentQueue<(string MessageId, string Recipient)> _accepted = new();
    private readonly SemaphoreSlim _control = new(1, 1);
    private TaskCompletionSource<string>? _reply;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ServerProcess? _process;
    private int _connections;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>Every recipient of every message the server took, in order.</summary>
    public IReadOnlyList<(string MessageId, string Recipient)> Accepted => _accepted.ToList();

    /// <summary>Connections the server accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>How many copies of a message (by Message-ID, without angle brackets) the server took.</summary>
    public int CopiesOf(string messageId) => _accepted.Count(a => a.MessageId == messageId);

    /// <param name="options">fault_smtp.py options, e.g. <c>["--data-delay", "5"]</c>, <c>["--password", "secret"]</c>.</param>
    public static async Task<FaultSmtpServer> StartAsync(params string[] options)
    {
        var python = SmtpSinkServer.AiosmtpdPython
            ?? throw new InvalidOperationException("python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd; ./test.sh does it).");
        var script = Path.Combine(RepoPaths.Root, "tests", "TestSupport", "smtp", "fault_smtp.py");
        for (var attempt = 1; ; attempt++)
        {
            var server = new FaultSmtpServer { Port = FreePort.Get() };
            // Stdin carries the control commands (CommandAsync).
            var psi = new ProcessStartInfo(python) { RedirectStandardInput = true };
            psi.ArgumentList.Add(script);
            psi.ArgumentList.Add("--port");
            psi.ArgumentList.Add(server.Port.ToString(CultureInfo.InvariantCulture));
            foreach (var o in options)
            {
                psi.ArgumentList.Add(o);
            }
            server._process = ServerProcess.Start(psi, server._output, server.OnLine);
            ProcessRunner.StartOrphanReaper($"/proc/{server._process.Id}", $"kill {server._process.Id}");
            var exited = server._process.Process.WaitForExitAsync();
            var first = await Task.WhenAny(server._ready.Task, exited, Task.Delay(TimeSpan.FromSeconds(20)));
            if (first == server._ready.Task)
            {
                return server;
            }
            var output = server.Output;
            await server.DisposeAsync();
            if (attempt >= 3)
            {
                throw new InvalidOperationException($"fault_smtp.py did not start on port {server.Port}: {output}");
            }
        }
    }

    /// <summary>Changes a fault for what follows (see fault_smtp.py): data_delay, drop_after_data, data_reply, mail_reply, rcpt_reply, password, stop_after (the listener stops itself after that many more messages).</summary>
    public Task SetAsync(string key, string value) => CommandAsync($"set {key} {value}");

    /// <summary>Stops listening and drops every open connection: new connections are refused.</summary>
    public Task StopListeningAsync() => CommandAsync("stop");

    /// <summary>Listens again on the same port.</summary>
    public Task StartListeningAsync() => CommandAsync("start");

    /// <summary>Waits until the server has taken <paramref name="copies"/> copies of a message; returns how many it has.</summary>
    public async Task<int> WaitForCopiesAsync(string messageId, int copies, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (CopiesOf(messageId) < copies && sw.Elapsed < timeout)
        {
            await Task.Delay(50);
        }
        return CopiesOf(messageId);
    }

    public string Output => _output.ToString();

    private async Task CommandAsync(string command)
    {
        await _control.WaitAsync();
        try
        {
            var reply = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _reply, reply);
            var stdin = _process!.Process.StandardInput;
            await stdin.WriteLineAsync(command);
            await stdin.FlushAsync();
            var answer = await reply.Task.WaitAsync(TimeSpan.FromSeconds(20));
            if (!answer.StartsWith("OK ", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"fault_smtp.py refused '{command}': {answer}");
            }
        }
        finally
        {
            _control.Release();
        }
    }

    // Every line is already in Output (ServerProcess): this only reads the server's reports.
    private void OnLine(string line)
    {
        if (line.StartsWith("READY ", StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
        else if (line == "CONNECTED")
        {
            Interlocked.Increment(ref _connections);
        }
        else if (line.StartsWith("ACCEPTED ", StringComparison.Ordinal) && line.Split(' ') is [_, var id, var rcpt])
        {
            _accepted.Enqueue((id, rcpt));
        }
        else if (line.StartsWith("OK ", StringComparison.Ordinal) || line.StartsWith("ERROR ", StringComparison.Ordinal))
        {
            Volatile.Read(ref _reply)?.TrySetResult(line);
        }
    }

    public ValueTask DisposeAsync()
    {
        _process?.Dispose();
        _process = null;
        _control.Dispose();
        return ValueTask.CompletedTask;
    }
}
