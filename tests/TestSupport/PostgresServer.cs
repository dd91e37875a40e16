using System.Net.Http;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Npgsql;
using Testcontainers.PostgreSql;
using Xunit;

namespace Newsletter.TestSupport;

/// <summary>
/// A PostgreSQL server for a test run, meant as an xunit v3 assembly fixture:
/// <c>[assembly: AssemblyFixture(typeof(PostgresServer))]</c>, then take <see cref="PostgresServer"/> in a test
/// class constructor and call <see cref="CreateDatabaseAsync"/> for an empty database of your own.
/// <para>Where the server comes from, in this order:</para>
/// <list type="number">
/// <item>env <c>NEWSLETTER_TEST_POSTGRES</c>: an admin connection string to an existing server (databases created are dropped on dispose);</item>
/// <item>a reachable Docker engine (DOCKER_HOST or /var/run/docker.sock answering /_ping): Testcontainers <c>postgres:15</c>
///   (set <c>NEWSLETTER_TEST_DOCKER=0</c> to skip this);</item>
/// <item>otherwise a private cluster: initdb into a fresh /tmp directory, trust auth, a free loopback port,
///   stopped and deleted on dispose (and by a watchdog if the test process dies).</item>
/// </list>
/// </summary>
public sealed partial class PostgresServer : IAsyncLifetime
{
    /// <summary>Environment variable with an admin connection string to use instead of starting a server.</summary>
    public const string ExternalServerVariable = "NEWSLETTER_TEST_POSTGRES";

    private readonly SemaphoreSlim _createLock = new(1, 1);
    private readonly List<string> _createdDatabases = [];
    private PostgreSqlContainer? _container;
    private LocalCluster? _cluster;
    private string? _adminConnectionString;

    /// <summary>How the server was obtained: "external", "docker" or "local".</summary>
    public string Mode { get; private set; } = "none";

    /// <summary>Connection string for the <c>postgres</c> superuser on the <c>postgres</c> database.</summary>
    public string AdminConnectionString =>
        _adminConnectionString ?? throw new InvalidOperationException("PostgresServer has not been initialized.");

    public async ValueTask InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(ExternalServerVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            Mode = "external";
            _adminConnectionString = external;
        }
        else if (await DockerIsReachableAsync().ConfigureAwait(false))
        {
            Mode = "docker";
            _container = new PostgreSqlBuilder("postgres:15")
                .WithCommand("-c", "fsync=off", "-c", "max_connections=300")
                .Build();
            await _container.StartAsync().ConfigureAwait(false);
            _adminConnectionString = new NpgsqlConnectionStringBuilder(_container.GetConnectionString())
            {
                Pooling = true,
            }.ConnectionString;
        }
        else
        {
            Mode = "local";
            _cluster = await LocalCluster.StartAsync().ConfigureAwait(false);
            _adminConnectionString = _cluster.AdminConnectionString;
        }

        // Fail here, with the mode in the message, rather than in the first test.
        try
        {
            await using var conn = new NpgsqlConnection(_adminConnectionString);
            await conn.OpenAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"PostgreSQL ({Mode}) is not reachable: {e.Message}", e);
        }
    }

    /// <summary>
    /// Creates a new, empty database named <paramref name="namePrefix"/> plus a unique suffix and returns a
    /// connection string for it (same server and credentials as <see cref="AdminConnectionString"/>).
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string namePrefix, CancellationToken ct = default)
    {
        var prefix = UnsafeNameChars().Replace(namePrefix.ToLowerInvariant(), "_").Trim('_');
        if (prefix.Length == 0)
        {
            prefix = "test";
        }

        if (prefix.Length > 40)
        {
            prefix = prefix[..40];
        }

        var name = $"{prefix}_{Guid.NewGuid():N}"[..(prefix.Length + 13)];

        // CREATE DATABASE copies template1 and fails if another CREATE is copying it at the same moment.
        await _createLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await using var conn = new NpgsqlConnection(AdminConnectionString);
            await conn.OpenAsync(ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            _createdDatabases.Add(name);
        }
        finally
        {
            _createLock.Release();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString)
        {
            Database = name,
            Pooling = true,
        }.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (Mode == "external" && _adminConnectionString is not null)
        {
            // Someone else's server: leave it as we found it.
            try
            {
                await using var conn = new NpgsqlConnection(_adminConnectionString);
                await conn.OpenAsync().ConfigureAwait(false);
                foreach (var db in _createdDatabases)
                {
                    await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)", conn);
                    await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
                }
            }
            catch (NpgsqlException)
            {
                // Best effort.
            }
        }

        if (_container is not null)
        {
            await _container.DisposeAsync().ConfigureAwait(false);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }

        _createLock.Dispose();
    }

    [GeneratedRegex("[^a-z0-9_]+")]
    private static partial Regex UnsafeNameChars();

    /// <summary>True when a Docker engine answers; a socket file alone is not enough (the CLI may exist without a daemon).</summary>
    private static async Task<bool> DockerIsReachableAsync()
    {
        var setting = Environment.GetEnvironmentVariable("NEWSLETTER_TEST_DOCKER");
        if (setting is "0" or "false")
        {
            return false;
        }

        var dockerHost = Environment.GetEnvironmentVariable("DOCKER_HOST");
        string? socketPath = null;
        Uri? tcpBase = null;
        if (string.IsNullOrWhiteSpace(dockerHost))
        {
            socketPath = "/var/run/docker.sock";
            if (!File.Exists(socketPath))
            {
                return false;
            }
        }
        else if (dockerHost.StartsWith("unix://", StringComparison.Ordinal))
        {
            socketPath = dockerHost["unix://".Length..];
        }
        else if (dockerHost.StartsWith("tcp://", StringComparison.Ordinal))
        {
            // TLS engines (DOCKER_TLS_VERIFY) answer https; a plain GET is still enough to see something listens.
            var scheme = Environment.GetEnvironmentVariable("DOCKER_TLS_VERIFY") is { Length: > 0 } ? "https" : "http";
            tcpBase = new Uri($"{scheme}://{dockerHost["tcp://".Length..]}");
        }
        else
        {
            // npipe:// or ssh://: let Testcontainers deal with it.
            return true;
        }

        var handler = new SocketsHttpHandler();
        if (socketPath is not null)
        {
            handler.ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), token).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(new Uri(tcpBase ?? new Uri("http://docker"), "/_ping")).ConfigureAwait(false);
            return response.IsSuccessStatusCode || tcpBase is not null;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException or IOException)
        {
            return false;
        }
    }

    /// <summary>A throwaway cluster made with initdb/pg_ctl, run as the postgres user when we are root.</summary>
    private sealed class LocalCluster : IAsyncDisposable
    {
        private readonly string _dir;
        private readonly string _dataDir;
        private readonly string _pgCtl;
        private int _stopped;

        private LocalCluster(string dir, string pgCtl, int port)
        {
            _dir = dir;
            _dataDir = Path.Combine(dir, "data");
            _pgCtl = pgCtl;
            Port = port;
        }

        public int Port { get; }

        public string AdminConnectionString => new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = "postgres",
            Database = "postgres",
            Pooling = true,
        }.ConnectionString;

        public static async Task<LocalCluster> StartAsync()
        {
            var binDir = FindBinDir();
            var initdb = Path.Combine(binDir, "initdb");
            var pgCtl = Path.Combine(binDir, "pg_ctl");

            // /tmp rather than TMPDIR: the postgres user must be able to reach it, and the socket path stays short.
            var dir = Directory.CreateTempSubdirectory("newsletter-pg-").FullName;
            if (OperatingSystem.IsLinux() && Directory.Exists("/tmp") && !dir.StartsWith("/tmp/", StringComparison.Ordinal))
            {
                Directory.Delete(dir);
                dir = Path.Combine("/tmp", "newsletter-pg-" + Guid.NewGuid().ToString("N")[..10]);
                Directory.CreateDirectory(dir);
            }

            try
            {
                if (ProcessRunner.IsRoot)
                {
                    // initdb and postgres refuse to run as root.
                    await Run("chown", ["postgres:postgres", dir], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                }

                var dataDir = Path.Combine(dir, "data");
                await Run(initdb,
                    ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                    TimeSpan.FromSeconds(120), asPostgres: true).ConfigureAwait(false);

                // The port is only free "a moment ago": retry with another one if postgres cannot bind it.
                for (var attempt = 1; ; attempt++)
                {
                    var port = FreePort.Get();
                    var options = string.Join(' ',
                        $"-p {port}",
                        $"-k {dir}",
                        "-c listen_addresses=127.0.0.1",
                        "-c fsync=off",
                        "-c synchronous_commit=off",
                        "-c full_page_writes=off",
                        "-c max_connections=300");
                    var (code, output) = await RunAsPostgres(pgCtl,
                        ["-D", dataDir, "-l", Path.Combine(dir, "postgres.log"), "-o", options, "-w", "-t", "60", "start"],
                        TimeSpan.FromSeconds(90)).ConfigureAwait(false);
                    if (code == 0)
                    {
                        var cluster = new LocalCluster(dir, pgCtl, port);
                        cluster.WatchForProcessExit();
                        return cluster;
                    }

                    var log = File.Exists(Path.Combine(dir, "postgres.log")) ? await File.ReadAllTextAsync(Path.Combine(dir, "postgres.log")).ConfigureAwait(false) : "";
                    if (attempt >= 3 || !log.Contains("in use", StringComparison.OrdinalIgnoreCase))
                    {
                        throw new InvalidOperationException($"pg_ctl start failed (exit {code}):\n{output}\n{log}");
                    }
                }
            }
            catch
            {
                TryDelete(dir);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _stopped, 1) == 1)
            {
                return;
            }

            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            try
            {
                await RunAsPostgres(_pgCtl, ["-D", _dataDir, "-m", "fast", "-w", "-t", "30", "stop"], TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                await RunAsPostgres(_pgCtl, ["-D", _dataDir, "-m", "immediate", "stop"], TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }

            TryDelete(_dir);
        }

        private void WatchForProcessExit()
        {
            // Normal exit without DisposeAsync (should not happen with xunit, but cheap)...
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;

            // ...and a crashed or killed test host: a detached shell stops the cluster once we are gone.
            var stop = ProcessRunner.IsRoot
                ? $"runuser -u postgres -- {ProcessRunner.Quote(_pgCtl)} -D {ProcessRunner.Quote(_dataDir)} -m immediate stop"
                : $"{ProcessRunner.Quote(_pgCtl)} -D {ProcessRunner.Quote(_dataDir)} -m immediate stop";
            ProcessRunner.StartOrphanReaper(_dataDir, $"{stop}; rm -rf {ProcessRunner.Quote(_dir)}");
        }

        private void OnProcessExit(object? sender, EventArgs e)
        {
            if (Interlocked.Exchange(ref _stopped, 1) == 1)
            {
                return;
            }

            try
            {
                RunAsPostgres(_pgCtl, ["-D", _dataDir, "-m", "immediate", "stop"], TimeSpan.FromSeconds(20)).GetAwaiter().GetResult();
            }
            catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
            {
                // Nothing more we can do at exit.
            }

            TryDelete(_dir);
        }

        private static string FindBinDir()
        {
            var initdb = ProcessRunner.Which("initdb");
            if (initdb is not null)
            {
                // /usr/local/bin/initdb may be a symlink into /usr/lib/postgresql/N/bin; pg_ctl sits beside the target.
                var target = new FileInfo(initdb).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? initdb;
                return Path.GetDirectoryName(target)!;
            }

            // Debian keeps the server binaries off PATH.
            const string debianRoot = "/usr/lib/postgresql";
            if (Directory.Exists(debianRoot))
            {
                var newest = Directory.GetDirectories(debianRoot)
                    .Where(d => File.Exists(Path.Combine(d, "bin", "initdb")))
                    .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0)
                    .FirstOrDefault();
                if (newest is not null)
                {
                    return Path.Combine(newest, "bin");
                }
            }

            throw new InvalidOperationException(
                "No PostgreSQL server found: set NEWSLETTER_TEST_POSTGRES to an admin connection string, start a Docker engine, " +
                "or install PostgreSQL (apt-get install postgresql; ./test.sh does this for you).");
        }

        private static async Task Run(string file, string[] args, TimeSpan timeout, bool asPostgres = false)
        {
            var (code, output) = asPostgres
                ? await RunAsPostgres(file, args, timeout).ConfigureAwait(false)
                : await ProcessRunner.RunAsync(file, args, timeout).ConfigureAwait(false);
            if (code != 0)
            {
                throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' failed (exit {code}):\n{output}");
            }
        }

        private static Task<(int, string)> RunAsPostgres(string file, string[] args, TimeSpan timeout) =>
            ProcessRunner.IsRoot
                ? ProcessRunner.RunAsync("runuser", ["-u", "postgres", "--", file, .. args], timeout)
                : ProcessRunner.RunAsync(file, args, timeout);

        private static void TryDelete(string dir)
        {
            try
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A leftover directory in /tmp is harmless.
            }
        }
    }
}
