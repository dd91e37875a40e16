using System.Diagnostics;
using System.Net;
using System.Text;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// The built SendEngine.dll as a process of its own (settings as environment variables), so a test can crash it for
/// real: <see cref="KillAsync"/> is SIGKILL, with no graceful shutdown, no flushing, leases and Hangfire state left
/// behind. An in-process host (<see cref="SendEngineFactory"/>) can only be disposed, which is a graceful stop.
/// </summary>
public sealed class SendEngineProcess : IAsyncDisposable
{
    // At most two Send Engine processes start (spawn to /health/live) at a time in the test run: a start is seconds of
    // JIT and migrations, and several at once on two loaded cores each took long enough to miss the start timeout.
    // Process-wide on purpose (the classes that start processes run side by side); it only orders start-ups.
    private static readonly SemaphoreSlim StartGate = new(2, 2);

    private readonly Process _process;
    private readonly StringBuilder _output;

    private SendEngineProcess(Process process, StringBuilder output, int port)
    {
        _process = process;
        _output = output;
        Port = port;
    }

    public int Port { get; }

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}/");

    public bool HasExited => _process.HasExited;

    /// <summary>What the process printed so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts it on a free port (or <paramref name="port"/>, e.g. to restart it where Member Center calls it) and waits until /health/live answers 200.</summary>
    public static async Task<SendEngineProcess> StartAsync(IReadOnlyDictionary<string, string?> settings, int? port = null)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        var projectDir = Path.Combine(RepoPaths.Root, "SendEngine");
        var dll = Path.Combine(projectDir, "bin", configuration, "net10.0", "SendEngine.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing; build the solution first");
        await StartGate.WaitAsync(TestContext.Current.CancellationToken);
        try
        {
            return await StartNowAsync(dll, projectDir, settings, port ?? FreePort.Get());
        }
        finally
        {
            StartGate.Release();
        }
    }

    private static async Task<SendEngineProcess> StartNowAsync(string dll, string projectDir, IReadOnlyDictionary<string, string?> settings, int port)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = projectDir };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add($"http://127.0.0.1:{port}");
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        foreach (var (k, v) in settings)
        {
            psi.Environment[k.Replace(":", "__", StringComparison.Ordinal)] = v;
        }
        var log = new StringBuilder();
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // If the test host dies first, do not leave a Send Engine running.
        ProcessRunnerReaper(process.Id);
        var engine = new SendEngineProcess(process, log, port);
        try
        {
            using var client = engine.CreateClient();
            // Starting (migrations, JWKS, every hosted service) took over 90 s on a CI machine at load 40: a slow start is not a failure.
            await engine.WaitUntilAsync(async () => (await TryGetAsync(client, "health/live")) == HttpStatusCode.OK, "Send Engine did not start",
                TimeSpan.FromSeconds(180));
            return engine;
        }
        catch
        {
            await engine.DisposeAsync();
            throw;
        }
    }

    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress };

    /// <summary>Polls <paramref name="condition"/> (up to <paramref name="timeout"/>, 90 s by default), failing at once if the process exits.</summary>
    public async Task WaitUntilAsync(Func<Task<bool>> condition, string what = "condition not reached", TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(90);
        while (sw.Elapsed < limit)
        {
            Assert.False(_process.HasExited, "Send Engine exited: " + Output);
            if (await condition())
            {
                return;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what} within {limit.TotalSeconds} s. Send Engine output:\n{Output}");
    }

    /// <summary>SIGKILL (the whole process tree), then waits for it to be gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        _process.Dispose();
    }

    private static async Task<HttpStatusCode?> TryGetAsync(HttpClient client, string url)
    {
        try
        {
            using var response = await client.GetAsync(url);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static void ProcessRunnerReaper(int pid)
    {
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec </dev/null >/dev/null 2>&1; while kill -0 {Environment.ProcessId} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -0 {Environment.ProcessId} 2>/dev/null || kill -9 {pid} 2>/dev/null; exit 0");
        try
        {
            using var _ = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Best effort: DisposeAsync is the normal path.
        }
    }
}
