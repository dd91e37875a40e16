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
/// <para>
/// Fault tests that stop, restart or crash PostgreSQL take a server of their own instead:
/// <see cref="StartDurableAsync"/> (or <see cref="StartAsync(PostgresServerOptions, CancellationToken)"/>). It comes from the
/// same choice, minus the external server (someone else's server is not ours to crash): a Testcontainers container
/// with a fixed host port, or a private cluster. Dispose it when done.
/// </para>
/// </summary>
public sealed partial class PostgresServer : IAsyncLifetime
{
    /// <summary>Environment variable with an admin connection string to use instead of starting a server.</summary>
    public const string ExternalServerVariable = "NEWSLETTER_TEST_POSTGRES";

    private const string ContainerDataDir = "/var/lib/postgresql/data";

    private readonly SemaphoreSlim _createLock = new(1, 1);
    private readonly SemaphoreSlim _lifecycleLock = new(1, 1);
    private readonly List<string> _createdDatabases = [];
    private readonly PostgresServerOptions _options;
    private PostgreSqlContainer? _container;
    private LocalCluster? _cluster;
    private string? _adminConnectionString;

    /// <summary>The shared, fast server of an assembly fixture (fsync and synchronous_commit off).</summary>
    public PostgresServer()
        : this(new PostgresServerOptions())
    {
    }

    private PostgresServer(PostgresServerOptions options) => _options = options;

    /// <summary>How the server was obtained: "external", "docker" or "local".</summary>
    public string Mode { get; private set; } = "none";

    /// <summary>The options it was started with.</summary>
    public PostgresServerOptions Options => _options;

    /// <summary>False between <see cref="StopAsync"/> and <see cref="StartAsync()"/>.</summary>
    public bool IsRunning { get; private set; }

    /// <summary>The loopback port it listens on (the same after a restart). 0 for an external server.</summary>
    public int Port { get; private set; }

    /// <summary>Connection string for the <c>postgres</c> superuser on the <c>postgres</c> database.</summary>
    public string AdminConnectionString =>
        _adminConnectionString ?? throw new InvalidOperationException("PostgresServer has not been initialized.");

    /// <summary>
    /// A private server with <c>fsync=on</c>, <c>synchronous_commit=on</c> and <c>full_page_writes=on</c> (PostgreSQL's
    /// defaults) that the test may crash (<see cref="RestartImmediateAsync"/>) or stop (<see cref="StopAsync"/>): what a
    /// committed transaction survives there, it survives in production. Dispose it when done.
    /// </summary>
    public static Task<PostgresServer> StartDurableAsync(CancellationToken ct = default) =>
        StartAsync(new PostgresServerOptions { Durable = true, Restartable = true }, ct);

    /// <summary>A server of its own with these options (already started); dispose it when done.</summary>
    public static async Task<PostgresServer> StartAsync(PostgresServerOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var server = new PostgresServer(options);
        try
        {
            await server.InitializeAsync().ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        ct.ThrowIfCancellationRequested();
        return server;
    }

    public async ValueTask InitializeAsync()
    {
        // The one place that chooses where the server comes from, for the shared server and for private ones alike.
        var external = Environment.GetEnvironmentVariable(ExternalServerVariable);
        if (!string.IsNullOrWhiteSpace(external) && !_options.Restartable)
        {
            Mode = "external";
            _adminConnectionString = external;
        }
        else if (await DockerIsReachableAsync().ConfigureAwait(false))
        {
            Mode = "docker";
            var builder = new PostgreSqlBuilder("postgres:15")
                .WithCommand([.. ServerSettings(_options).SelectMany(s => new[] { "-c", s })]);
            if (_options.Restartable)
            {
                // A fixed host port: Docker maps a new random one each time a container starts.
                builder = builder.WithPortBinding(FreePort.Get(), PostgreSqlBuilder.PostgreSqlPort);
            }

            _container = builder.Build();
            await _container.StartAsync().ConfigureAwait(false);
            Port = _container.GetMappedPublicPort(PostgreSqlBuilder.PostgreSqlPort);
            _adminConnectionString = new NpgsqlConnectionStringBuilder(_container.GetConnectionString())
            {
                Pooling = true,
            }.ConnectionString;
        }
        else
        {
            Mode = "local";
            _cluster = await LocalCluster.StartAsync(ServerSettings(_options)).ConfigureAwait(false);
            Port = _cluster.Port;
            _adminConnectionString = _cluster.AdminConnectionString;
        }

        IsRunning = true;

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
    public Task<string> CreateDatabaseAsync(string namePrefix, CancellationToken ct = default) => CreateDatabaseAsync(namePrefix, null, ct);

    /// <summary>
    /// Creates a database as <see cref="CreateDatabaseAsync(string, CancellationToken)"/> does, as a copy of the database
    /// <paramref name="template"/> (no one may be connected to it; null: an empty one). A copy of an already migrated
    /// database costs a file copy instead of running every migration again.
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string namePrefix, string? template, CancellationToken ct = default)
    {
        if (template is not null && (template.Length == 0 || UnsafeNameChars().IsMatch(template)))
        {
            throw new ArgumentException($"Not a database name of this server: {template}", nameof(template));
        }
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
            await using var cmd = new NpgsqlCommand(template is null ? $"CREATE DATABASE \"{name}\"" : $"CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"", conn);
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

    /// <summary>
    /// A crash: <c>pg_ctl restart -m immediate</c> (the postmaster and its children quit at once, no checkpoint, no
    /// flush of what is only in shared memory), then the server starts again on the same port and replays its WAL.
    /// Returns once it accepts connections. Connections open at the crash are broken (Npgsql pools notice on use).
    /// </summary>
    public async Task RestartImmediateAsync(CancellationToken ct = default)
    {
        await _lifecycleLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            RequireRestartable();
            if (_cluster is not null)
            {
                await _cluster.RestartImmediateAsync().ConfigureAwait(false);
            }
            else
            {
                await StopContainerAsync(immediate: true, ct).ConfigureAwait(false);
                await _container!.StartAsync(ct).ConfigureAwait(false);
            }

            IsRunning = true;
            await WaitForConnectionsAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _lifecycleLock.Release();
        }
    }

    /// <summary>
    /// Stops the server for an outage of any length: <paramref name="immediate"/> true is a crash (no checkpoint), false a
    /// fast shutdown (sessions ended, checkpoint). While stopped, connections to <see cref="Port"/> are refused.
    /// </summary>
    public async Task StopAsync(bool immediate, CancellationToken ct = default)
    {
        await _lifecycleLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            RequireRestartable();
            if (!IsRunning)
            {
                return;
            }

            if (_cluster is not null)
            {
                await _cluster.StopAsync(immediate ? "immediate" : "fast").ConfigureAwait(false);
            }
            else
            {
                await StopContainerAsync(immediate, ct).ConfigureAwait(false);
            }

            IsRunning = false;
        }
        finally
        {
            _lifecycleLock.Release();
        }
    }

    /// <summary>Starts a server stopped by <see cref="StopAsync"/> again, on the same port; returns once it accepts connections.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        await _lifecycleLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            RequireRestartable();
            if (IsRunning)
            {
                return;
            }

            if (_cluster is not null)
            {
                await _cluster.StartAgainAsync().ConfigureAwait(false);
            }
            else
            {
                await _container!.StartAsync(ct).ConfigureAwait(false);
            }

            IsRunning = true;
            await WaitForConnectionsAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _lifecycleLock.Release();
        }
    }

    private void RequireRestartable()
    {
        if (!_options.Restartable || (_cluster is null && _container is null))
        {
            throw new InvalidOperationException(
                "Only a server of the test's own can be stopped or restarted: use PostgresServer.StartDurableAsync() " +
                "or StartAsync(new PostgresServerOptions { Restartable = true }).");
        }
    }

    private async Task StopContainerAsync(bool immediate, CancellationToken ct)
    {
        if (immediate)
        {
            // postgres is the container's PID 1; SIGQUIT is its immediate shutdown, and the container exits with it.
            await _container!.ExecAsync(["sh", "-c", "kill -QUIT 1"], ct).ConfigureAwait(false);
        }

        // The image's stop signal is SIGINT: a fast shutdown (a no-op once the container has exited).
        await _container!.StopAsync(ct).ConfigureAwait(false);
    }

    private async Task WaitForConnectionsAsync(CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false, Timeout = 5 };
        var until = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await using var conn = new NpgsqlConnection(builder.ConnectionString);
                await conn.OpenAsync(ct).ConfigureAwait(false);
                return;
            }
            catch (NpgsqlException) when (DateTime.UtcNow < until)
            {
                // Still replaying WAL ("the database system is starting up"), or not listening yet.
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The <c>-c</c> settings a server of ours runs with. The shared server hosts every test's databases; Hangfire opens
    /// its connections through its own factory, whose pools (one per test database) keep idle connections for minutes
    /// after their host is gone, so it allows many.
    /// </summary>
    private static string[] ServerSettings(PostgresServerOptions options) => options.Durable
        ? ["fsync=on", "synchronous_commit=on", "full_page_writes=on", "max_connections=300"]
        : ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=1000"];

    public async ValueTask DisposeAsync()
    {
        if (!_options.Restartable)
        {
            NpgsqlConnection.ClearAllPools();
        }
        else if (_adminConnectionString is not null)
        {
            // A private server of one test: only its own pools, not the other tests'.
            foreach (var cs in _createdDatabases
                         .Select(db => new NpgsqlConnectionStringBuilder(_adminConnectionString) { Database = db, Pooling = true }.ConnectionString)
                         .Append(_adminConnectionString))
            {
                using var conn = new NpgsqlConnection(cs);
                NpgsqlConnection.ClearPool(conn);
            }
        }

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
        _lifecycleLock.Dispose();
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
        private readonly string _serverOptions;
        private int _stopped;

        private LocalCluster(string dir, string pgCtl, int port, string serverOptions)
        {
            _dir = dir;
            _dataDir = Path.Combine(dir, "data");
            _pgCtl = pgCtl;
            _serverOptions = serverOptions;
            Port = port;
        }

        private string LogFile => Path.Combine(_dir, "postgres.log");

        public int Port { get; }

        public string AdminConnectionString => new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = "postgres",
            Database = "postgres",
            Pooling = true,
        }.ConnectionString;

        public static async Task<LocalCluster> StartAsync(IEnumerable<string> settings)
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
                        new[] { $"-p {port}", $"-k {dir}", "-c listen_addresses=127.0.0.1" }.Concat(settings.Select(v => "-c " + v)));
                    var (code, output) = await RunAsPostgres(pgCtl,
                        ["-D", dataDir, "-l", Path.Combine(dir, "postgres.log"), "-o", options, "-w", "-t", "60", "start"],
                        TimeSpan.FromSeconds(90)).ConfigureAwait(false);
                    if (code == 0)
                    {
                        var cluster = new LocalCluster(dir, pgCtl, port, options);
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

        /// <summary><c>pg_ctl restart -m immediate</c> with the options (port, settings) it was started with.</summary>
        public async Task RestartImmediateAsync()
        {
            var (code, output) = await RunAsPostgres(_pgCtl,
                ["-D", _dataDir, "-l", LogFile, "-o", _serverOptions, "-m", "immediate", "-w", "-t", "60", "restart"],
                TimeSpan.FromSeconds(90)).ConfigureAwait(false);
            await ThrowOnFailureAsync("restart -m immediate", code, output).ConfigureAwait(false);
        }

        /// <summary><c>pg_ctl stop -m MODE</c>; the cluster stays on disk for <see cref="StartAgainAsync"/>.</summary>
        public async Task StopAsync(string mode)
        {
            var (code, output) = await RunAsPostgres(_pgCtl, ["-D", _dataDir, "-m", mode, "-w", "-t", "60", "stop"], TimeSpan.FromSeconds(90))
                .ConfigureAwait(false);
            await ThrowOnFailureAsync("stop -m " + mode, code, output).ConfigureAwait(false);
        }

        /// <summary>Starts the stopped cluster again with the same port and settings.</summary>
        public async Task StartAgainAsync()
        {
            var (code, output) = await RunAsPostgres(_pgCtl,
                ["-D", _dataDir, "-l", LogFile, "-o", _serverOptions, "-w", "-t", "60", "start"], TimeSpan.FromSeconds(90)).ConfigureAwait(false);
            await ThrowOnFailureAsync("start", code, output).ConfigureAwait(false);
        }

        private async Task ThrowOnFailureAsync(string what, int code, string output)
        {
            if (code != 0)
            {
                var log = File.Exists(LogFile) ? await File.ReadAllTextAsync(LogFile).ConfigureAwait(false) : "";
                throw new InvalidOperationException($"pg_ctl {what} failed (exit {code}):\n{output}\n{log}");
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
