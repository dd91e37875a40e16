using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;
using MimeKit;

namespace Newsletter.TestSupport;

/// <summary>
/// A private Dovecot IMAP server (Debian package dovecot-imapd) on free loopback ports: plain IMAP with STARTTLS on
/// <see cref="ImapPort"/>, IMAPS on <see cref="ImapsPort"/>, a self-signed certificate for 127.0.0.1/localhost made
/// here, one user (<see cref="Username"/>/<see cref="Password"/>, plaintext passwd-file) with a maildir in a temp
/// directory. Runs in the foreground (<c>dovecot -F</c>); as root the mail processes run as nobody.
/// <see cref="StopAsync"/> and <see cref="StartAsync"/> again keep the ports and mail (a dropped server that comes
/// back). Handles Dovecot 2.3 and 2.4 configuration syntax.
/// </summary>
public sealed class DovecotServer : IAsyncDisposable
{
    private readonly ProcessOutput _output = new();
    private readonly string _dir;
    private ServerProcess? _process;

    public string Host => "127.0.0.1";
    public int ImapPort { get; }
    public int ImapsPort { get; }
    public string Username => "bounces";
    public string Password { get; } = "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
    /// <summary>The PEM file of the self-signed server certificate (CN=localhost, SAN localhost and 127.0.0.1).</summary>
    public string CertificatePath => Path.Combine(_dir, "cert.pem");
    public string Version { get; private set; } = "";

    /// <summary>Path of dovecot, or null when dovecot-imapd is not installed (./test.sh installs it).</summary>
    public static string? Executable => ProcessRunner.Which("dovecot", "/usr/sbin");

    private DovecotServer(string dir, int imap, int imaps)
    {
        _dir = dir;
        ImapPort = imap;
        ImapsPort = imaps;
    }

    /// <summary>Writes the configuration and starts Dovecot; retries on other ports when one was taken meanwhile.</summary>
    public static async Task<DovecotServer> CreateAsync()
    {
        var exe = Executable ?? throw new InvalidOperationException("dovecot is not installed (apt-get install dovecot-imapd; ./test.sh does it).");
        for (var attempt = 1; ; attempt++)
        {
            var dir = Path.Combine(Path.GetTempPath(), "dovecot-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(dir);
            var server = new DovecotServer(dir, FreePort.Get(), FreePort.Get());
            try
            {
                var (_, version) = await ProcessRunner.RunAsync(exe, ["--version"], TimeSpan.FromSeconds(10));
                server.Version = version.Trim();
                await server.WriteConfigurationAsync();
                await server.StartAsync();
                ProcessRunner.StartOrphanReaper(dir, $"kill $(cat {ProcessRunner.Quote(Path.Combine(dir, "run", "master.pid"))}) 2>/dev/null; rm -rf {ProcessRunner.Quote(dir)}");
                return server;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await server.DisposeAsync();
            }
        }
    }

    private bool Is24 => Version.StartsWith("2.4", StringComparison.Ordinal) || Version.StartsWith("3.", StringComparison.Ordinal);

    private async Task WriteConfigurationAsync()
    {
        // The certificate: self-signed, for the names the tests connect to.
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("localhost");
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
            await File.WriteAllTextAsync(CertificatePath, cert.ExportCertificatePem());
            await File.WriteAllTextAsync(Path.Combine(_dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        }

        var root = ProcessRunner.IsRoot;
        string user, group, uid, gid;
        if (root)
        {
            // Dovecot does not give mail access to root: the mail processes run as nobody, who must own the maildir.
            (user, group, uid, gid) = ("nobody", "nogroup", "65534", "65534");
        }
        else
        {
            user = Environment.UserName;
            uid = (await ProcessRunner.RunAsync("id", ["-u"], TimeSpan.FromSeconds(5))).Output.Trim();
            gid = (await ProcessRunner.RunAsync("id", ["-g"], TimeSpan.FromSeconds(5))).Output.Trim();
            group = (await ProcessRunner.RunAsync("id", ["-gn"], TimeSpan.FromSeconds(5))).Output.Trim();
        }
        var home = Path.Combine(_dir, "mail", Username);
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(Path.Combine(_dir, "run"));
        var passwd = Path.Combine(_dir, "passwd");
        await File.WriteAllTextAsync(passwd, $"{Username}:{{PLAIN}}{Password}:{uid}:{gid}::{home}\n");
        var conf = Is24 ? Config24(user, group, passwd) : Config23(user, group, passwd);
        await File.WriteAllTextAsync(Path.Combine(_dir, "dovecot.conf"), conf);
        if (root)
        {
            await ProcessRunner.RunAsync("chmod", ["755", _dir, Path.Combine(_dir, "mail")], TimeSpan.FromSeconds(5));
            await ProcessRunner.RunAsync("chown", ["-R", $"{uid}:{gid}", Path.Combine(_dir, "mail")], TimeSpan.FromSeconds(5));
        }
    }

    private string Config23(string user, string group, string passwd) => $$"""
        listen = 127.0.0.1
        protocols = imap
        base_dir = {{_dir}}/run
        state_dir = {{_dir}}/run
        log_path = /dev/stderr
        info_log_path = /dev/stderr
        default_internal_user = {{user}}
        default_login_user = {{user}}
        default_internal_group = {{group}}
        disable_plaintext_auth = no
        auth_mechanisms = plain login
        ssl = yes
        ssl_cert = <{{_dir}}/cert.pem
        ssl_key = <{{_dir}}/key.pem
        mail_location = maildir:~/Maildir
        first_valid_uid = 1
        first_valid_gid = 1
        passdb {
          driver = passwd-file
          args = scheme=PLAIN username_format=%u {{passwd}}
        }
        userdb {
          driver = passwd-file
          args = username_format=%u {{passwd}}
        }
        service imap-login {
          inet_listener imap {
            port = {{ImapPort}}
          }
          inet_listener imaps {
            port = {{ImapsPort}}
            ssl = yes
          }
        }
        service stats {
          unix_listener stats-reader {
            mode = 0666
          }
          unix_listener stats-writer {
            mode = 0666
          }
        }

        """;

    private string Config24(string user, string group, string passwd) => $$"""
        dovecot_config_version = 2.4.0
        dovecot_storage_version = 2.4.0
        listen = 127.0.0.1
        protocols = imap
        base_dir = {{_dir}}/run
        state_dir = {{_dir}}/run
        log_path = /dev/stderr
        info_log_path = /dev/stderr
        default_internal_user = {{user}}
        default_login_user = {{user}}
        default_internal_group = {{group}}
        auth_allow_cleartext = yes
        auth_mechanisms = plain login
        ssl = yes
        ssl_server_cert_file = {{_dir}}/cert.pem
        ssl_server_key_file = {{_dir}}/key.pem
        mail_driver = maildir
        mail_path = ~/Maildir
        first_valid_uid = 1
        first_valid_gid = 1
        passdb passwd-file {
          passwd_file_path = {{passwd}}
          default_password_scheme = PLAIN
        }
        userdb passwd-file {
          passwd_file_path = {{passwd}}
        }
        service imap-login {
          inet_listener imap {
            port = {{ImapPort}}
          }
          inet_listener imaps {
            port = {{ImapsPort}}
            ssl = yes
          }
        }

        """;

    /// <summary>Starts Dovecot (again) with the same configuration, ports and mail; waits until both ports accept.</summary>
    public async Task StartAsync()
    {
        var psi = new ProcessStartInfo(Executable!)
        {
            ArgumentList = { "-F", "-c", Path.Combine(_dir, "dovecot.conf") },
            WorkingDirectory = "/",
        };
        _process = ServerProcess.Start(psi, _output);
        if (await _process.WaitUntilAcceptingAsync(TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(100), ImapPort, ImapsPort))
        {
            return;
        }
        var output = Output;
        await StopAsync();
        throw new InvalidOperationException($"dovecot ({Version}) did not start on {Host}:{ImapPort}/{ImapsPort}: {output}");
    }

    /// <summary>Stops Dovecot (SIGTERM, then kill): its connections drop. The mail stays for <see cref="StartAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }
        if (!_process.HasExited)
        {
            await ProcessRunner.RunAsync("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.Process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
        _process.Dispose();
        _process = null;
        // Until the ports are closed, a reconnect would still reach the dying processes.
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(10) && (await FreePort.IsAcceptingAsync(ImapPort) || await FreePort.IsAcceptingAsync(ImapsPort)))
        {
            await Task.Delay(100);
        }
    }

    public string Output => _output.ToString();

    /// <summary>A logged-in client over IMAPS that accepts the test certificate.</summary>
    public async Task<ImapClient> ConnectAsync(CancellationToken ct = default)
    {
        var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true, Timeout = 30_000 };
        await client.ConnectAsync(Host, ImapsPort, SecureSocketOptions.SslOnConnect, ct);
        await client.AuthenticateAsync(Username, Password, ct);
        return client;
    }

    /// <summary>Delivers a message into <paramref name="folder"/> by IMAP APPEND; returns its UID.</summary>
    public async Task<UniqueId?> AppendAsync(string rawMessage, string folder = "INBOX", CancellationToken ct = default)
    {
        using var client = await ConnectAsync(ct);
        var target = await client.GetFolderAsync(folder, ct);
        var message = await MimeMessage.LoadAsync(new MemoryStream(Encoding.UTF8.GetBytes(rawMessage.ReplaceLineEndings("\r\n"))), ct);
        var uid = await target.AppendAsync(message, MessageFlags.None, ct);
        await client.DisconnectAsync(true, ct);
        return uid;
    }

    /// <summary>How many messages <paramref name="folder"/> holds (0 when it does not exist).</summary>
    public async Task<int> CountAsync(string folder, CancellationToken ct = default)
    {
        using var client = await ConnectAsync(ct);
        try
        {
            var f = await client.GetFolderAsync(folder, ct);
            await f.OpenAsync(FolderAccess.ReadOnly, ct);
            return f.Count;
        }
        catch (FolderNotFoundException)
        {
            return 0;
        }
        finally
        {
            await client.DisconnectAsync(true, ct);
        }
    }

    /// <summary>The Subject headers of the messages in <paramref name="folder"/>.</summary>
    public async Task<List<string>> SubjectsAsync(string folder, CancellationToken ct = default)
    {
        using var client = await ConnectAsync(ct);
        try
        {
            var f = await client.GetFolderAsync(folder, ct);
            await f.OpenAsync(FolderAccess.ReadOnly, ct);
            if (f.Count == 0)
            {
                return [];
            }
            var summaries = await f.FetchAsync(0, -1, MessageSummaryItems.Envelope, ct);
            return summaries.Select(s => s.Envelope?.Subject ?? "").ToList();
        }
        catch (FolderNotFoundException)
        {
            return [];
        }
        finally
        {
            await client.DisconnectAsync(true, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
