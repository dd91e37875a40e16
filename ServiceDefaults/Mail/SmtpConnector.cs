using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using MailKit.Net.Smtp;
using MailKit.Security;

namespace Newsletter.ServiceDefaults.Mail;

/// <summary>
/// How to reach a relay that is not the platform's own (a tenant's): the TLS mode is explicit rather than guessed from
/// <see cref="SmtpOptions.UseTls"/> and the port, the certificate check may trust extra roots, and the address to
/// connect to is chosen by the caller (which refuses non-public addresses).
/// </summary>
/// <param name="Resolve">The address to connect to for a host name; throws when there is none the caller accepts.</param>
/// <param name="ConnectTimeout">The TCP connect alone; the greeting, EHLO, TLS and AUTH keep <see cref="SmtpOptions.CommandTimeout"/>.</param>
public sealed record SmtpConnectionSettings(
    SecureSocketOptions Tls,
    RemoteCertificateValidationCallback? CertificateValidation,
    Func<string, CancellationToken, Task<IPAddress>>? Resolve,
    TimeSpan? ConnectTimeout = null);

public static class SmtpConnector
{
    /// <summary>
    /// Opens an authenticated MailKit connection with MailKit's own stream. MailKit has one timeout for every reply;
    /// this sets it to <see cref="SmtpOptions.DataTimeout"/>, the longest legitimate wait (the end-of-DATA reply), so a
    /// slow relay's late 250 is not taken for a failure and the message sent again.
    /// </summary>
    public static Task<SmtpClient> ConnectAsync(SmtpOptions options, CancellationToken ct) => ConnectAsync(options, null, ct);

    /// <summary>
    /// Opens an authenticated MailKit connection. The socket is connected by hand with TCP_NODELAY: without it
    /// Nagle plus delayed ACK stall every message by ~45 ms (see stack-notes). Connecting, and then the greeting,
    /// EHLO, TLS and login together, are each bounded by <see cref="SmtpOptions.CommandTimeout"/>.
    /// </summary>
    /// <param name="wrap">
    /// Puts a stream of the caller's between MailKit and the connected socket (which the stream then owns), e.g. one
    /// that times each SMTP phase itself; MailKit's single timeout does not apply to such a stream.
    /// </param>
    public static Task<SmtpClient> ConnectAsync(SmtpOptions options, Func<Socket, Stream>? wrap, CancellationToken ct) =>
        ConnectAsync(options, wrap, null, ct);

    /// <param name="settings">A tenant's relay: explicit TLS mode, certificate check and address choice (null: the platform's).</param>
    public static async Task<SmtpClient> ConnectAsync(SmtpOptions options, Func<Socket, Stream>? wrap, SmtpConnectionSettings? settings, CancellationToken ct)
    {
        var client = new SmtpClient { Timeout = (int)options.DataTimeout.TotalMilliseconds };
        if (settings?.CertificateValidation is { } validate)
        {
            client.ServerCertificateValidationCallback = validate;
        }
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            var connectLimit = settings?.ConnectTimeout ?? options.CommandTimeout;
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connectTimeout.CancelAfter(connectLimit);
                try
                {
                    if (settings?.Resolve is { } resolve)
                    {
                        await socket.ConnectAsync(await resolve(options.Host, connectTimeout.Token), options.Port, connectTimeout.Token);
                    }
                    else
                    {
                        await socket.ConnectAsync(options.Host, options.Port, connectTimeout.Token);
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"connecting to {options.Host}:{options.Port} timed out after {connectLimit}");
                }
            }
            var tls = settings?.Tls ?? (!options.UseTls ? SecureSocketOptions.None
                : options.Port == 465 ? SecureSocketOptions.SslOnConnect
                : SecureSocketOptions.StartTls);
            // The greeting, EHLO, STARTTLS and AUTH are commands: a relay that accepts the connection and then says
            // nothing (black-holed, overloaded) must not hold the caller for the data timeout.
            using var handshakeTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            handshakeTimeout.CancelAfter(options.CommandTimeout);
            try
            {
                if (wrap is null)
                {
                    await client.ConnectAsync(socket, options.Host, options.Port, tls, handshakeTimeout.Token);
                }
                else
                {
                    stream = wrap(socket);
                    await client.ConnectAsync(stream, options.Host, options.Port, tls, handshakeTimeout.Token);
                }
                if (!string.IsNullOrEmpty(options.Username))
                {
                    await client.AuthenticateAsync(options.Username, options.Password ?? "", handshakeTimeout.Token);
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"{options.Host}:{options.Port} did not complete the SMTP greeting, EHLO, TLS and login within {options.CommandTimeout} (Smtp:CommandTimeout)");
            }
            return client;
        }
        catch
        {
            client.Dispose();
            stream?.Dispose();
            socket.Dispose();
            throw;
        }
    }
}
