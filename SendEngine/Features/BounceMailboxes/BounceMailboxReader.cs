using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using MimeKit;
using Npgsql;
using SendEngine.Features.Metrics;
using SendEngine.Features.Webhooks;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>One mailbox as the reader sees it (the platform's from configuration, or a tenant's row with its password decrypted).</summary>
public sealed record MailboxSettings(
    MailboxIdentity Identity,
    string Host,
    int Port,
    SecureSocketOptions Tls,
    string Username,
    string Password,
    string Folder,
    string ProcessedFolder,
    string UnparsableFolder,
    bool AllowInvalidCertificate,
    bool RequirePublicAddress,
    DateTimeOffset Version);

/// <summary>
/// Reads one mailbox for as long as its token runs: holds a PostgreSQL advisory lock for it (one reader per mailbox
/// across Send Engine processes; the lock goes with the session if the process dies), logs in over TLS as configured,
/// scans the folder, then waits in IDLE (woken by the server when mail arrives) or, without IDLE, polls. Every message
/// ends in the processed folder (events stored, or a report that raises none) or the unparsable folder (with its
/// reason); one whose events cannot be stored stays and is tried again at the next scan, at most MaxAttempts times.
/// Nothing is ever deleted. A failed connection or login is logged and retried with a doubling delay.
/// </summary>
public sealed partial class BounceMailboxReader(
    MailboxSettings mailbox,
    BounceMessageHandler handler,
    NpgsqlDataSource db,
    BounceMailboxOptions options,
    SendEngineMetrics metrics,
    TimeProvider clock,
    ILogger logger)
{
    private MailboxIdentity Id => mailbox.Identity;

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await using var lockConn = await TryLockAsync(ct);
                if (lockConn is null)
                {
                    // Another process reads this mailbox; take over when it stops.
                    await Task.Delay(options.RefreshInterval, clock, ct);
                    continue;
                }
                try
                {
                    await ConnectLoopAsync(lockConn, ct);
                }
                finally
                {
                    await UnlockAsync(lockConn);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutdown or the mailbox changed: the lock is released above, the connection closed below.
        }
    }

    /// <summary>The advisory lock's key: 64 bits of a hash of the mailbox key.</summary>
    internal static long LockKey(string mailboxKey) =>
        BitConverter.ToInt64(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("sendengine:bounce-mailbox:" + mailboxKey)), 0);

    private async Task<NpgsqlConnection?> TryLockAsync(CancellationToken ct)
    {
        NpgsqlConnection? conn = null;
        try
        {
            conn = await db.OpenConnectionAsync(ct);
            await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock($1)", conn) { Parameters = { new() { Value = LockKey(Id.Key) } } };
            if ((bool)(await cmd.ExecuteScalarAsync(ct))!)
            {
                return conn;
            }
        }
        catch (NpgsqlException ex)
        {
            LogLockFailed(logger, Id.Key, ex.Message);
        }
        if (conn is not null)
        {
            await conn.DisposeAsync();
        }
        return null;
    }

    private async Task UnlockAsync(NpgsqlConnection conn)
    {
        try
        {
            // A pooled connection keeps session locks until it is reset; release it now so another process can take over.
            await using var cmd = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", conn) { Parameters = { new() { Value = LockKey(Id.Key) } } };
            await cmd.ExecuteScalarAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            // The session is gone, and the lock with it.
        }
    }

    private async Task ConnectLoopAsync(NpgsqlConnection lockConn, CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            using var client = new ImapClient { Timeout = (int)options.CommandTimeout.TotalMilliseconds };
            if (mailbox.AllowInvalidCertificate)
            {
                client.ServerCertificateValidationCallback = (_, _, _, _) => true;
            }
            try
            {
                await ConnectAsync(client, ct);
                await client.AuthenticateAsync(mailbox.Username, mailbox.Password, ct);
                failures = 0;
                await handler.StatusAsync(Id, connected: true, checkedNow: false, error: null, ct);
                LogConnected(logger, Id.Key, mailbox.Host, mailbox.Port, client.Capabilities.HasFlag(ImapCapabilities.Idle));
                await ServeAsync(client, lockConn, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await DisconnectQuietlyAsync(client);
                throw;
            }
            catch (LockLostException)
            {
                await DisconnectQuietlyAsync(client);
                return;
            }
            catch (Exception ex)
            {
                failures++;
                var delay = TimeSpan.FromTicks((long)Math.Min(options.ReconnectMaxDelay.Ticks,
                    options.ReconnectMinDelay.Ticks * Math.Pow(2, Math.Min(failures - 1, 30))));
                var (kind, message) = ex switch
                {
                    AuthenticationException => ("authentication", $"login as {mailbox.Username} failed: {ex.Message}"),
                    SslHandshakeException => ("tls", "TLS handshake failed (certificate not valid for the host, or no TLS on that port): " + ex.Message),
                    SocketException or IOException or ImapProtocolException or TimeoutException => ("connection", ex.Message),
                    _ => ("error", $"{ex.GetType().Name}: {ex.Message}"),
                };
                metrics.BounceMailboxFailure(Id.Kind, kind);
                if (kind == "authentication")
                {
                    LogLoginFailed(logger, Id.Key, mailbox.Username, mailbox.Host, mailbox.Port, ex.Message, delay);
                }
                else
                {
                    LogConnectionFailed(logger, Id.Key, mailbox.Host, mailbox.Port, kind, ex.Message, delay);
                }
                try
                {
                    await handler.StatusAsync(Id, connected: false, checkedNow: false, error: message, ct);
                }
                catch (Exception statusError) when (statusError is not OperationCanceledException)
                {
                    // The database is down too; the log has it.
                }
                await DisconnectQuietlyAsync(client);
                await Task.Delay(delay, clock, ct);
            }
        }
    }

    private async Task ConnectAsync(ImapClient client, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.CommandTimeout);
        try
        {
            if (!mailbox.RequirePublicAddress)
            {
                await client.ConnectAsync(mailbox.Host, mailbox.Port, mailbox.Tls, timeout.Token);
                return;
            }
            // A tenant names the host: connect only to a public address it resolves to (the name is checked again here,
            // not only at registration, so a DNS change cannot point the reader at the internal network).
            var addresses = IPAddress.TryParse(mailbox.Host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(mailbox.Host, timeout.Token);
            var target = addresses.FirstOrDefault(WebhookTargetGuard.IsPublic)
                ?? throw new SocketException((int)SocketError.AccessDenied);
            var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(target, mailbox.Port, timeout.Token);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            await client.ConnectAsync(socket, mailbox.Host, mailbox.Port, mailbox.Tls, timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"connecting to {mailbox.Host}:{mailbox.Port} took longer than {options.CommandTimeout}");
        }
    }

    private async Task ServeAsync(ImapClient client, NpgsqlConnection lockConn, CancellationToken ct)
    {
        var folder = await client.GetFolderAsync(mailbox.Folder, ct);
        await folder.OpenAsync(FolderAccess.ReadWrite, ct);
        var processed = await EnsureFolderAsync(client, mailbox.ProcessedFolder, ct);
        var unparsable = await EnsureFolderAsync(client, mailbox.UnparsableFolder, ct);
        var idle = client.Capabilities.HasFlag(ImapCapabilities.Idle);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            await CheckLockAsync(lockConn, ct);
            await ScanAsync(folder, processed, unparsable, ct);
            await handler.StatusAsync(Id, connected: false, checkedNow: true, error: null, ct);
            if (idle)
            {
                // IDLE until the server reports new mail, or the poll interval passes (retries, and IDLE is renewed well
                // inside the 29 minutes RFC 2177 allows).
                using var done = new CancellationTokenSource(options.PollInterval, clock);
                void Wake(object? sender, EventArgs e) => done.Cancel();
                folder.CountChanged += Wake;
                try
                {
                    await client.IdleAsync(done.Token, ct);
                }
                finally
                {
                    folder.CountChanged -= Wake;
                }
            }
            else
            {
                await Task.Delay(options.PollInterval, clock, ct);
                await client.NoOpAsync(ct);
            }
        }
    }

    private static async Task<IMailFolder> EnsureFolderAsync(ImapClient client, string name, CancellationToken ct)
    {
        try
        {
            return await client.GetFolderAsync(name, ct);
        }
        catch (FolderNotFoundException)
        {
            var root = client.GetFolder(client.PersonalNamespaces[0]);
            return await root.CreateAsync(name, true, ct) ?? throw new InvalidOperationException($"The server did not create the folder {name}.");
        }
    }

    private async Task CheckLockAsync(NpgsqlConnection lockConn, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand("SELECT 1", lockConn);
            await cmd.ExecuteScalarAsync(ct);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            // The session that held the lock is gone: another process may read the mailbox now.
            LogLockLost(logger, Id.Key, ex.Message);
            throw new LockLostException();
        }
    }

    private async Task ScanAsync(IMailFolder folder, IMailFolder processed, IMailFolder unparsable, CancellationToken ct)
    {
        var uids = await folder.SearchAsync(SearchQuery.All, ct);
        if (uids.Count == 0)
        {
            return;
        }
        var validity = (long)folder.UidValidity;
        var summaries = await folder.FetchAsync(uids, MessageSummaryItems.UniqueId | MessageSummaryItems.Size, ct);
        foreach (var s in summaries)
        {
            ct.ThrowIfCancellationRequested();
            var uid = s.UniqueId;
            if (s.Size is { } size && size > options.MaxMessageBytes)
            {
                await GiveUpAsync(folder, unparsable, validity, uid, null, $"larger than {options.MaxMessageBytes} bytes", ct);
                continue;
            }
            MimeMessage message;
            try
            {
                message = await folder.GetMessageAsync(uid, ct);
            }
            catch (MessageNotFoundException)
            {
                continue; // moved or expunged by someone else meanwhile
            }
            BounceDecision decision;
            try
            {
                decision = await handler.HandleAsync(Id, validity, uid.Id, message, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                await RetryLaterAsync(folder, unparsable, validity, uid, message, ex, ct);
                continue;
            }
            if (decision.Outcome == BounceOutcome.Unparsable)
            {
                await GiveUpAsync(folder, unparsable, validity, uid, message, decision.Reason ?? "unparsable", ct);
                continue;
            }
            await folder.MoveToAsync(uid, processed, ct);
            await handler.ForgetAsync(Id, validity, uid.Id, ct);
            await handler.CountAsync(Id, decision.Outcome, ct);
            metrics.BounceMailboxMessage(Id.Kind, decision.Outcome.ToString().ToLowerInvariant());
            LogHandled(logger, Id.Key, uid.Id, decision.Outcome, decision.Events, decision.Reason);
        }
    }

    private async Task RetryLaterAsync(IMailFolder folder, IMailFolder unparsable, long validity, UniqueId uid, MimeMessage message, Exception ex, CancellationToken ct)
    {
        var error = ex is NpgsqlException or PostgresException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
        int attempts;
        try
        {
            attempts = await handler.RecordRetryAsync(Id, validity, uid.Id, message, error, ct);
        }
        catch (Exception recordError) when (recordError is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // The database is unreachable: the message stays in the folder and is seen again at the next scan.
            LogStoreFailed(logger, Id.Key, uid.Id, 0, error);
            return;
        }
        LogStoreFailed(logger, Id.Key, uid.Id, attempts, error);
        metrics.BounceMailboxMessage(Id.Kind, "retried");
        if (attempts >= options.MaxAttempts)
        {
            await GiveUpAsync(folder, unparsable, validity, uid, message, $"events not stored after {attempts} attempts: {error}", ct);
        }
    }

    private async Task GiveUpAsync(IMailFolder folder, IMailFolder unparsable, long validity, UniqueId uid, MimeMessage? message, string reason, CancellationToken ct)
    {
        // Recorded first: if the move then fails, the next scan finds the message again and records the same row.
        await handler.RecordUnparsableAsync(Id, validity, uid.Id, message, reason, ct);
        await folder.MoveToAsync(uid, unparsable, ct);
        await handler.CountAsync(Id, BounceOutcome.Unparsable, ct);
        metrics.BounceMailboxMessage(Id.Kind, "unparsable");
        LogUnparsable(logger, Id.Key, uid.Id, reason);
    }

    private static async Task DisconnectQuietlyAsync(ImapClient client)
    {
        if (!client.IsConnected)
        {
            return;
        }
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await client.DisconnectAsync(true, cts.Token);
        }
        catch (Exception ex) when (ex is IOException or ImapProtocolException or ImapCommandException or SocketException or OperationCanceledException or ServiceNotConnectedException)
        {
            // Closing a connection that already broke.
        }
    }

    private sealed class LockLostException : Exception;

    [LoggerMessage(LogLevel.Information, "Bounce mailbox {Mailbox}: connected to {Host}:{Port} (IDLE: {Idle})")]
    private static partial void LogConnected(ILogger logger, string mailbox, string host, int port, bool idle);

    [LoggerMessage(LogLevel.Error, "Bounce mailbox {Mailbox}: login as {Username} at {Host}:{Port} failed ({Error}); check the username and password. Retrying in {Delay}")]
    private static partial void LogLoginFailed(ILogger logger, string mailbox, string username, string host, int port, string error, TimeSpan delay);

    [LoggerMessage(LogLevel.Warning, "Bounce mailbox {Mailbox}: {Kind} error with {Host}:{Port}: {Error}. Retrying in {Delay}")]
    private static partial void LogConnectionFailed(ILogger logger, string mailbox, string host, int port, string kind, string error, TimeSpan delay);

    [LoggerMessage(LogLevel.Warning, "Bounce mailbox {Mailbox}: the advisory lock could not be taken: {Error}")]
    private static partial void LogLockFailed(ILogger logger, string mailbox, string error);

    [LoggerMessage(LogLevel.Warning, "Bounce mailbox {Mailbox}: the database session holding the reader's lock was lost ({Error}); reconnecting")]
    private static partial void LogLockLost(ILogger logger, string mailbox, string error);

    [LoggerMessage(LogLevel.Information, "Bounce mailbox {Mailbox}: message {Uid} {Outcome} ({Events} events) {Reason}")]
    private static partial void LogHandled(ILogger logger, string mailbox, uint uid, BounceOutcome outcome, int events, string? reason);

    [LoggerMessage(LogLevel.Warning, "Bounce mailbox {Mailbox}: message {Uid} moved to the unparsable folder: {Reason}")]
    private static partial void LogUnparsable(ILogger logger, string mailbox, uint uid, string reason);

    [LoggerMessage(LogLevel.Warning, "Bounce mailbox {Mailbox}: the events of message {Uid} could not be stored (attempt {Attempts}); it stays for the next scan: {Error}")]
    private static partial void LogStoreFailed(ILogger logger, string mailbox, uint uid, int attempts, string error);
}
