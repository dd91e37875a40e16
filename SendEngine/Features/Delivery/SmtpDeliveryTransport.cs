using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;

namespace SendEngine.Features.Delivery;

/// <summary>
/// SMTP through MailKit. Each session owns one authenticated connection (TCP_NODELAY, see SmtpConnector) that is
/// reused for every message the worker sends, and re-opened after a connection error.
/// </summary>
public sealed partial class SmtpDeliveryTransport(IOptions<SmtpOptions> options, ILogger<SmtpDeliveryTransport> logger) : IDeliveryTransport
{
    public string Name => "smtp";

    public IDeliverySession OpenSession() => new Session(options.Value, logger);

    private sealed class Session(SmtpOptions options, ILogger logger) : IDeliverySession
    {
        private SmtpClient? _client;

        public async Task<DeliveryResult> SendAsync(MimeMessage message, CancellationToken ct)
        {
            try
            {
                if (_client is not { IsConnected: true })
                {
                    Drop();
                    _client = await SmtpConnector.ConnectAsync(options, ct);
                }
                var reply = await _client.SendAsync(message, ct);
                return new DeliveryResult(DeliveryOutcome.Sent, string.IsNullOrEmpty(reply) ? "250 OK" : "250 " + reply);
            }
            catch (SmtpCommandException ex)
            {
                var code = (int)ex.StatusCode;
                var detail = $"{code} {ex.Message}".Trim();
                // After a failed MAIL/RCPT/DATA MailKit has reset the transaction; the connection stays usable.
                if (code >= 500)
                {
                    return new DeliveryResult(DeliveryOutcome.Rejected, detail);
                }
                if (code is 421 || !(_client?.IsConnected ?? false))
                {
                    Drop();
                    return new DeliveryResult(DeliveryOutcome.Unavailable, detail);
                }
                return new DeliveryResult(DeliveryOutcome.Deferred, detail);
            }
            catch (Exception ex) when (ex is SmtpProtocolException or IOException or SocketException or ServiceNotConnectedException
                                           or MailKit.Security.AuthenticationException or TimeoutException
                                           || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogConnectionError(logger, ex.GetType().Name, ex.Message);
                Drop();
                return new DeliveryResult(ex is MailKit.Security.AuthenticationException ? DeliveryOutcome.Misconfigured : DeliveryOutcome.Unavailable,
                    $"{ex.GetType().Name}: {ex.Message}");
            }
        }

        private void Drop()
        {
            _client?.Dispose();
            _client = null;
        }

        public async ValueTask DisposeAsync()
        {
            if (_client is { IsConnected: true } client)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await client.DisconnectAsync(quit: true, timeout.Token);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Closing politely is best effort.
                }
            }
            Drop();
        }
    }

    [LoggerMessage(LogLevel.Warning, "SMTP connection error ({ErrorType}): {Error}")]
    private static partial void LogConnectionError(ILogger logger, string errorType, string error);
}
