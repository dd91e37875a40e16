using System.Diagnostics;
using System.Text;

namespace Newsletter.TestSupport;

/// <summary>Small helpers for running the external programs the fixtures need (initdb, pg_ctl, node…).</summary>
internal static class ProcessRunner
{
    public static bool IsRoot => OperatingSystem.IsLinux() && Environment.UserName == "root";

    /// <summary>Runs a program to completion and returns its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(
        string fileName, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct = default)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            // Any cwd the invoking user can read; the postgres user may not be able to enter the repo.
            WorkingDirectory = "/",
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = new Process { StartInfo = psi };
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"Could not start '{fileName}': {e.Message}", e);
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new TimeoutException($"'{fileName} {string.Join(' ', psi.ArgumentList)}' did not finish within {timeout}. Output:\n{output}");
        }

        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    /// <summary>Finds an executable on PATH (or in the extra directories), or null.</summary>
    public static string? Which(string name, params string[] extraDirs)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(extraDirs);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// Starts a detached shell that waits until this test process is gone (or <paramref name="aliveMarker"/>
    /// disappears, meaning the fixture already cleaned up) and then runs <paramref name="cleanupScript"/>.
    /// It covers the cases DisposeAsync cannot: a crashed or killed test host, Ctrl-C on `dotnet test`.
    /// </summary>
    public static void StartOrphanReaper(string aliveMarker, string cleanupScript)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }

        var script =
            "exec </dev/null >/dev/null 2>&1\n" +
            $"while kill -0 {Environment.ProcessId} 2>/dev/null && [ -e {Quote(aliveMarker)} ]; do sleep 1; done\n" +
            $"[ -e {Quote(aliveMarker)} ] && {{ {cleanupScript}\n}}\n" +
            "exit 0\n";
        var psi = new ProcessStartInfo(Which("setsid") is not null ? "setsid" : "sh") { UseShellExecute = false };
        if (psi.FileName == "setsid")
        {
            // A new session: a Ctrl-C sent to the test run's process group does not take the reaper with it.
            psi.ArgumentList.Add("sh");
        }

        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        try
        {
            using var _ = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Best effort only: DisposeAsync remains the normal path.
        }
    }

    /// <summary>Kills <paramref name="process"/> and its children if it still runs, waits a moment for it, and disposes it.</summary>
    public static void KillAndDispose(Process? process)
    {
        try
        {
            if (process is { HasExited: false })
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        process?.Dispose();
    }

    /// <summary>Single-quotes a string for sh.</summary>
    public static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
