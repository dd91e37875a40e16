using System.Security.Cryptography;
using MailKit.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using SendEngine.Data;
using SendEngine.Features.Metrics;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>
/// Runs one <see cref="BounceMailboxReader"/> per mailbox: the platform's (configuration) and every enabled tenant
/// mailbox. Rereads the table every RefreshInterval, or at once when this process's API changed a mailbox, and
/// restarts a reader whose mailbox changed. Each reader takes its mailbox's advisory lock, so with several Send Engine
/// processes each mailbox is read by one of them; the others wait and take over when it stops.
/// </summary>
public sealed partial class BounceMailboxSupervisor(
    IServiceScopeFactory scopes,
    BounceMessageHandler handler,
    BounceMailboxSecretProtector secrets,
    NpgsqlDataSource db,
    IOptions<BounceMailboxOptions> options,
    WakeSignal<BounceMailboxSupervisor> signal,
    SendEngineMetrics metrics,
    TimeProvider clock,
    ILoggerFactory loggers) : BackgroundService
{
    private sealed record Running(MailboxSettings Settings, CancellationTokenSource Stop, Task Task);

    private readonly ILogger _logger = loggers.CreateLogger<BounceMailboxSupervisor>();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (!o.ReadersEnabled)
        {
            return;
        }
        var running = new Dictionary<string, Running>(StringComparer.Ordinal);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                List<MailboxSettings>? desired = null;
                try
                {
                    desired = await LoadAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogLoadFailed(_logger, ex.Message);
                }
                if (desired is not null)
                {
                    var wanted = desired.ToDictionary(d => d.Identity.Key, StringComparer.Ordinal);
                    foreach (var (key, r) in running.ToList())
                    {
                        if (!wanted.TryGetValue(key, out var d) || d.Version != r.Settings.Version || r.Task.IsCompleted)
                        {
                            await StopAsync(r);
                            running.Remove(key);
                        }
                    }
                    foreach (var d in desired.Where(d => !running.ContainsKey(d.Identity.Key)))
                    {
                        var stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                        var reader = new BounceMailboxReader(d, handler, db, o, metrics, clock, loggers.CreateLogger<BounceMailboxReader>());
                        running[d.Identity.Key] = new Running(d, stop, Task.Run(() => reader.RunAsync(stop.Token), CancellationToken.None));
                    }
                }
                await signal.WaitAsync(o.RefreshInterval, clock, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            await Task.WhenAll(running.Values.Select(StopAsync));
        }
    }

    private static async Task StopAsync(Running r)
    {
        await r.Stop.CancelAsync();
        try
        {
            await r.Task;
        }
        catch (OperationCanceledException)
        {
        }
        r.Stop.Dispose();
    }

    private async Task<List<MailboxSettings>> LoadAsync(CancellationToken ct)
    {
        var o = options.Value;
        var list = new List<MailboxSettings>();
        var p = o.Platform;
        if (p.Configured)
        {
            list.Add(new MailboxSettings(new MailboxIdentity(MailboxIdentity.PlatformKey, null), p.Host!.Trim(), p.Port,
                SocketOptions(BounceMailboxTlsNames.Normalise(p.Tls)!), p.Username!, p.Password!, p.Folder, p.ProcessedFolder, p.UnparsableFolder,
                p.AllowInvalidCertificate, RequirePublicAddress: false, DateTimeOffset.MinValue));
        }
        using var scope = scopes.CreateScope();
        var context = scope.ServiceProvider.GetRequiredService<SendEngineDbContext>();
        var rows = await context.Set<BounceMailbox>().AsNoTracking().Where(m => m.Enabled).ToListAsync(ct);
        foreach (var m in rows)
        {
            var identity = new MailboxIdentity(m.Id.ToString("N"), m.TenantId);
            string password;
            try
            {
                password = secrets.Unprotect(m.Id, m.Password);
            }
            catch (CryptographicException ex)
            {
                LogUndecryptable(_logger, identity.Key, ex.Message);
                await handler.StatusAsync(identity, false, false, "the stored password cannot be decrypted with this configuration (BounceMailboxes:SecretPassword or the Data Protection keys changed); set it again", ct);
                continue;
            }
            list.Add(new MailboxSettings(identity, m.Host, m.Port, SocketOptions(m.Tls), m.Username, password, m.Folder, m.ProcessedFolder,
                m.UnparsableFolder, m.AllowInvalidCertificate, RequirePublicAddress: !o.AllowPrivateNetworks, m.UpdatedAt));
        }
        return list;
    }

    internal static SecureSocketOptions SocketOptions(string tls) => tls switch
    {
        BounceMailboxTls.StartTls => SecureSocketOptions.StartTls,
        BounceMailboxTls.None => SecureSocketOptions.None,
        _ => SecureSocketOptions.SslOnConnect,
    };

    [LoggerMessage(LogLevel.Warning, "Bounce mailboxes could not be loaded; the running readers go on: {Error}")]
    private static partial void LogLoadFailed(ILogger logger, string error);

    [LoggerMessage(LogLevel.Error, "Bounce mailbox {Mailbox}: the stored password cannot be decrypted: {Error}")]
    private static partial void LogUndecryptable(ILogger logger, string mailbox, string error);
}
