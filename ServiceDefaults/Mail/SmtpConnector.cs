using System.Net.Sockets;
using MailKit.Net.Smtp;
using MailKit.Security;

namespace Newsletter.ServiceDefaults.Mail;

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
    public static async Task<SmtpClient> ConnectAsync(SmtpOptions options, Func<Socket, Stream>? wrap, CancellationToken ct)
    {
        var client = new SmtpClient { Timeout = (int)options.DataTimeout.TotalMilliseconds };
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connectTimeout.CancelAfter(options.CommandTimeout);
                try
                {
                    await socket.ConnectAsync(options.Host, options.Port, connectTimeout.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"connecting to {options.Host}:{options.Port} timed out after {options.CommandTimeout}");
                }
            }
            var tls = !options.UseTls ? SecureSocketOptions.None
                : options.Port == 465 ? SecureSocketOptions.SslOnConnect
                : SecureSocketOptions.StartTls;
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
