using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Newsletter.TestSupport;

/// <summary>A record dnsmasq serves: TXT (the value split into 255-byte strings) or MX (value = exchange host).</summary>
public sealed record DnsRecord(string Type, string Name, string Value, int Preference = 10)
{
    public static DnsRecord Txt(string name, string value) => new("TXT", name, value);

    public static DnsRecord Mx(string name, string host, int preference = 10) => new("MX", name, host, preference);
}

/// <summary>
/// Debian's <c>dnsmasq</c> as an authoritative-enough DNS server on a free loopback port (UDP and TCP): no upstream, no
/// /etc/hosts, only the records given, and NXDOMAIN for any other name under the <paramref name="localZone"/> (so a
/// missing record reads as missing, not as a server failure). dnsmasq reads TXT and MX records only at start, so
/// <see cref="SetRecordsAsync"/> rewrites its configuration and restarts it on the same port. Dispose to stop it.
/// </summary>
public sealed class DnsmasqServer : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dnsmasq-").FullName;
    private readonly string _localZone;
    private readonly ProcessOutput _output = new();
    private ServerProcess? _process;

    private DnsmasqServer(string localZone) => _localZone = localZone;

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>"127.0.0.1:port", the form of SenderDomains:DnsServers.</summary>
    public string EndPoint => $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Path of dnsmasq, or null when it is not installed (./test.sh installs dnsmasq-base).</summary>
    public static string? Executable => ProcessRunner.Which("dnsmasq", "/usr/sbin", "/sbin");

    /// <param name="localZone">The zone dnsmasq answers for alone (e.g. "test"): unknown names in it are NXDOMAIN.</param>
    public static async Task<DnsmasqServer> StartAsync(string localZone = "test", IEnumerable<DnsRecord>? records = null)
    {
        var server = new DnsmasqServer(localZone);
        for (var attempt = 1; ; attempt++)
        {
            server.Port = FreePort.Get();
            try
            {
                await server.StartProcessAsync(records ?? []);
                ProcessRunner.StartOrphanReaper(server._dir, $"kill {server._process!.Id} 2>/dev/null; rm -rf {ProcessRunner.Quote(server._dir)}");
                return server;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                server.Stop();
            }
        }
    }

    /// <summary>Serves exactly these records from now on (restarts dnsmasq on the same port).</summary>
    public async Task SetRecordsAsync(IEnumerable<DnsRecord> records)
    {
        Stop();
        await StartProcessAsync(records);
    }

    private async Task StartProcessAsync(IEnumerable<DnsRecord> records)
    {
        var exe = Executable ?? throw new InvalidOperationException("dnsmasq is not installed (apt-get install dnsmasq-base; ./test.sh does it).");
        var conf = new StringBuilder();
        conf.AppendLine(CultureInfo.InvariantCulture, $"local=/{_localZone}/");
        foreach (var r in records)
        {
            if (r.Type == "MX")
            {
                conf.AppendLine(CultureInfo.InvariantCulture, $"mx-host={r.Name},{r.Value},{r.Preference}");
            }
            else
            {
                var parts = Enumerable.Range(0, (r.Value.Length + 254) / 255).Select(i => r.Value.Substring(i * 255, Math.Min(255, r.Value.Length - i * 255)));
                conf.AppendLine(CultureInfo.InvariantCulture, $"txt-record={r.Name},{string.Join(",", parts.Select(p => "\"" + p.Replace("\"", "\\\"", StringComparison.Ordinal) + "\""))}");
            }
        }
        var confPath = Path.Combine(_dir, "dnsmasq.conf");
        await File.WriteAllTextAsync(confPath, conf.ToString());
        var psi = new ProcessStartInfo(exe)
        {
            ArgumentList =
            {
                "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1",
                $"--port={Port.ToString(CultureInfo.InvariantCulture)}", $"--conf-file={confPath}", "--pid-file=",
                "--log-facility=-", "--cache-size=0",
            },
        };
        if (ProcessRunner.IsRoot)
        {
            psi.ArgumentList.Add("--user=root");
        }
        _process = ServerProcess.Start(psi, _output);
        if (!await _process.WaitUntilAcceptingAsync(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), Port))
        {
            throw new InvalidOperationException($"dnsmasq did not start on {EndPoint}: {Output}");
        }
    }

    public string Output => _output.ToString();

    private void Stop()
    {
        _process?.Dispose();
        _process = null;
    }

    public ValueTask DisposeAsync()
    {
        Stop();
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
