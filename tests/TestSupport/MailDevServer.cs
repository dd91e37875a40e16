using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Xunit;

namespace Newsletter.TestSupport;

/// <summary>One message as maildev received it.</summary>
/// <param name="Id">maildev's id, for <see cref="MailDevServer.GetSourceAsync"/>.</param>
/// <param name="From">The first From address (empty if none).</param>
/// <param name="To">The To addresses.</param>
public sealed record ReceivedMail(
    string Id,
    string Subject,
    string From,
    IReadOnlyList<string> To,
    string? Html,
    string? Text,
    DateTimeOffset Date)
{
    public override string ToString() => $"[{Date:HH:mm:ss.fff}] {From} -> {string.Join(", ", To)}: \"{Subject}\"";
}

/// <summary>
/// A private maildev (npm, pinned in tools/package.json) on free loopback ports: point the code under test at
/// <see cref="SmtpHost"/>:<see cref="SmtpPort"/> (plain SMTP, no TLS, no auth) and read what arrived through its
/// REST API. Usable as a class, collection or assembly fixture; <see cref="ClearAsync"/> between tests if shared.
/// </summary>
public sealed class MailDevServer : IAsyncLifetime
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private ProcessOutput _output = new();
    private ServerProcess? _process;
    private HttpClient? _http;
    private string? _mailDir;

    public string SmtpHost => "127.0.0.1";

    public int SmtpPort { get; private set; }

    /// <summary>The web UI; the REST API lives under <c>api/</c>.</summary>
    public Uri WebUri { get; private set; } = new("http://127.0.0.1/");

    /// <summary>Path of maildev's entry point inside the repo.</summary>
    public static string ScriptPath =>
        Path.Combine(RepoPaths.Root, "tools", "node_modules", "maildev", "dist", "bin", "maildev.js");

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ScriptPath))
        {
            throw new InvalidOperationException(
                $"maildev is not installed ({ScriptPath} is missing). Run `npm ci --prefix tools` in {RepoPaths.Root} (./test.sh does it).");
        }

        var node = ProcessRunner.Which("node")
            ?? throw new InvalidOperationException("node is not on PATH; install Node.js 20+ (./test.sh does it).");

        // Own mail directory: maildev's default (/tmp/maildev) is shared by every instance on the machine.
        _mailDir = Directory.CreateTempSubdirectory("newsletter-maildev-").FullName;

        for (var attempt = 1; ; attempt++)
        {
            SmtpPort = FreePort.Get();
            var webPort = FreePort.Get();
            WebUri = new Uri($"http://127.0.0.1:{webPort}/");
            StartProcess(node, webPort);
            // 90 s like PostgreSQL's start: ./test.sh starts the test projects side by side, each with its own maildev
            // and PostgreSQL at the same moment, and node took over 30 s to answer on a loaded 2-core machine.
            if (await WaitUntilReadyAsync(webPort, StartTimeout).ConfigureAwait(false))
            {
                break;
            }

            var output = Output;
            StopProcess();
            if (attempt >= 3 || !output.Contains("EADDRINUSE", StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"maildev did not start (SMTP {SmtpPort}, web {webPort}) within {StartTimeout.TotalSeconds} s. Its output:\n{output}");
            }
        }

        _http = new HttpClient { BaseAddress = WebUri, Timeout = TimeSpan.FromSeconds(15) };
        ProcessRunner.StartOrphanReaper(_mailDir, $"kill {_process!.Id}; rm -rf {ProcessRunner.Quote(_mailDir)}");
    }

    /// <summary>What maildev printed so far (for diagnostics).</summary>
    public string Output => _output.ToString();

    /// <summary>All messages received so far, oldest first.</summary>
    public async Task<IReadOnlyList<ReceivedMail>> ListAsync(CancellationToken ct = default)
    {
        var items = await Http.GetFromJsonAsync<List<MailDevEmail>>("api/email", Json, ct).ConfigureAwait(false) ?? [];
        return items.Select(ToReceivedMail).ToList();
    }

    /// <summary>
    /// Polls until a message matching <paramref name="predicate"/> has arrived. On timeout throws a
    /// <see cref="TimeoutException"/> that lists what did arrive.
    /// </summary>
    public async Task<ReceivedMail> WaitForMailAsync(
        Func<ReceivedMail, bool> predicate, TimeSpan timeout, CancellationToken ct = default)
    {
        var stopwatch = Stopwatch.StartNew();
        IReadOnlyList<ReceivedMail> seen = [];
        while (true)
        {
            seen = await ListAsync(ct).ConfigureAwait(false);
            var match = seen.FirstOrDefault(predicate);
            if (match is not null)
            {
                return match;
            }

            if (stopwatch.Elapsed >= timeout)
            {
                var arrived = seen.Count == 0
                    ? "no mail at all arrived"
                    : $"{seen.Count} mail(s) arrived, none matching:\n  " + string.Join("\n  ", seen);
                throw new TimeoutException($"No matching mail within {timeout.TotalSeconds:0.#} s at maildev {SmtpHost}:{SmtpPort}; {arrived}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
        }
    }

    /// <summary>The raw RFC 5322 message (all headers, e.g. List-Unsubscribe, which the parsed JSON omits).</summary>
    public Task<string> GetSourceAsync(string id, CancellationToken ct = default) =>
        Http.GetStringAsync($"api/email/{Uri.EscapeDataString(id)}/source", ct);

    /// <summary>Deletes every received message.</summary>
    public async Task ClearAsync(CancellationToken ct = default)
    {
        using var response = await Http.DeleteAsync("api/email/all", ct).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
    }

    public ValueTask DisposeAsync()
    {
        _http?.Dispose();
        StopProcess();
        if (_mailDir is not null)
        {
            try
            {
                Directory.Delete(_mailDir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Harmless leftover in /tmp.
            }
        }

        return ValueTask.CompletedTask;
    }

    private HttpClient Http => _http ?? throw new InvalidOperationException("MailDevServer has not been initialized.");

    private void StartProcess(string node, int webPort)
    {
        var psi = new ProcessStartInfo(node)
        {
            // Closed at once below: maildev must not read the test host's stdin.
            RedirectStandardInput = true,
            // maildev looks for .maildevrc.json in its cwd and parents; the empty mail dir has none.
            WorkingDirectory = _mailDir,
        };
        foreach (var arg in new[]
                 {
                     ScriptPath,
                     "--smtp", SmtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--ip", SmtpHost,
                     "--web", webPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--web-ip", "127.0.0.1",
                     "--mail-directory", _mailDir!,
                 })
        {
            psi.ArgumentList.Add(arg);
        }

        // A fresh output per attempt: a failed start reports what that attempt printed.
        _output = new ProcessOutput();
        _process = ServerProcess.Start(psi, _output);
        _process.Process.StandardInput.Close();
    }

    private async Task<bool> WaitUntilReadyAsync(int webPort, TimeSpan timeout)
    {
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < timeout)
        {
            if (_process!.HasExited)
            {
                return false;
            }

            if (await FreePort.IsAcceptingAsync(SmtpPort).ConfigureAwait(false)
                && await FreePort.IsAcceptingAsync(webPort).ConfigureAwait(false))
            {
                try
                {
                    using var response = await probe.GetAsync(new Uri(WebUri, "api/healthz")).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode)
                    {
                        return true;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    // Not yet.
                }
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        return false;
    }

    private void StopProcess()
    {
        _process?.Dispose();
        _process = null;
    }

    private static ReceivedMail ToReceivedMail(MailDevEmail e) => new(
        e.Id,
        e.Subject ?? "",
        e.From?.FirstOrDefault()?.Address ?? "",
        (e.To ?? []).Select(a => a.Address ?? "").ToList(),
        e.Html,
        e.Text,
        e.Time ?? DateTimeOffset.MinValue);

    // The subset of maildev's JSON (GET /api/email) that tests use.
    private sealed record MailDevEmail(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("subject")] string? Subject,
        [property: JsonPropertyName("from")] List<MailDevAddress>? From,
        [property: JsonPropertyName("to")] List<MailDevAddress>? To,
        [property: JsonPropertyName("html")] string? Html,
        [property: JsonPropertyName("text")] string? Text,
        [property: JsonPropertyName("time")] DateTimeOffset? Time);

    private sealed record MailDevAddress(
        [property: JsonPropertyName("address")] string? Address,
        [property: JsonPropertyName("name")] string? Name);
}
