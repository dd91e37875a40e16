using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;

namespace SendEngine.Transports;

/// <summary>
/// SMTP through MailKit. Each session owns one authenticated connection (TCP_NODELAY, see SmtpConnector) that is
/// reused for every message the worker sends. Replies and failures map to a <see cref="DeliveryOutcome"/> by where
/// they happened (docs/send-engine.md "Transports"): <see cref="SmtpWireStream"/> times each phase and tells whether
/// the message was completely written, which separates <see cref="DeliveryOutcome.Unavailable"/> (nothing was
/// delivered, safe to try again) from <see cref="DeliveryOutcome.Unknown"/> (it may have been, never retried). The
/// connection is dropped after either.
/// </summary>
public sealed partial class SmtpTransport(IOptions<SmtpOptions> options, ILogger<SmtpTransport> logger) : ITransport
{
    public const string TransportName = "smtp";

    /// <summary>The fields a DKIM signature covers when present (Gmail's list, plus List-Id and Feedback-ID).</summary>
    private static readonly string[] DkimHeaders = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
        "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID"];

    public string Name => TransportName;

    /// <summary>A tenant's own relay (ProviderCredentials): its TLS mode, certificate check and address guard; null for the platform relay.</summary>
    public SmtpConnectionSettings? Connection { get; init; }

    public ITransportSession OpenSession() => new Session(options.Value, Connection, logger);

    /// <summary>
    /// The message as MIME. A bulk job's message without DKIM is a <see cref="WireMessage"/> (header section and body
    /// written as bytes once, copied when MailKit measures and writes it). Otherwise MimeKit's model: without DKIM the
    /// body is a <see cref="PrerenderedBody"/> (encoded once); with DKIM MimeKit's own parts, which MimeKit prepares and
    /// canonicalises for the signature.
    /// </summary>
    /// <exception cref="ParseException">The recipient address is not one.</exception>
    /// <param name="reuse">The session's previous wire message, if any, made into this one (<see cref="WireMessage.Render"/>).</param>
    public static MimeMessage ToMime(OutgoingMessage m, WireMessage? reuse = null)
    {
        if (WireMessage.Render(m, reuse) is { } wire)
        {
            return wire;
        }
        var message = new MimeMessage();
        // A new address per message: InternetAddressList subscribes to the address's Changed event, so one shared
        // MailboxAddress would keep every message of the job alive (RSS grew by ~17 KB per message).
        message.From.Add(new MailboxAddress(m.From.Name, m.From.Address));
        if (m.VisibleTo is { } visibleTo)
        {
            foreach (var to in visibleTo)
            {
                message.To.Add(new MailboxAddress(to.Name, to.Address));
            }
        }
        else
        {
            message.To.Add(m.ToName is null ? MailboxAddress.Parse(m.To) : new MailboxAddress(m.ToName, MailboxAddress.Parse(m.To).Address));
        }
        foreach (var cc in m.VisibleCc)
        {
            message.Cc.Add(new MailboxAddress(cc.Name, cc.Address));
        }
        if (m.ReplyTo is not null)
        {
            message.ReplyTo.Add(new MailboxAddress((string?)null, m.ReplyTo));
        }
        message.Subject = m.Subject;
        message.Date = m.Date;
        message.MessageId = m.MessageId;
        foreach (var header in m.Headers)
        {
            message.Headers.Add(header.Name, header.Value);
        }
        var dkim = m.Rendering?.Dkim;
        if (dkim is null && m.Attachments.Count == 0 && m.InlineImages.Count == 0)
        {
            message.Body = PrerenderedBody.Create(m.TextBody, m.HtmlBody);
            return message;
        }
        var builder = new BodyBuilder { TextBody = m.TextBody, HtmlBody = m.HtmlBody };
        foreach (var image in m.InlineImages)
        {
            // multipart/related with the HTML: the HTML refers to it as cid:NAME.
            var resource = builder.LinkedResources.Add(image.Name, image.Content, ContentType.Parse(image.ContentType));
            resource.ContentId = image.Name;
        }
        foreach (var file in m.Attachments)
        {
            builder.Attachments.Add(file.Name, file.Content, ContentType.Parse(file.ContentType));
        }
        message.Body = builder.ToMessageBody();
        if (dkim is null)
        {
            return message;
        }
        message.Prepare(EncodingConstraint.SevenBit);
        // Only the fields the message has: a listed absent field would sign its absence (allowed, but it blocks a
        // relay's legitimate addition such as Cc on forwarding).
        dkim.Sign(message, DkimHeaders.Where(h => message.Headers.Contains(h) || (message.Body?.Headers.Contains(h) ?? false)).ToArray());
        return message;
    }

    private sealed class Session(SmtpOptions options, SmtpConnectionSettings? connection, ILogger logger) : ITransportSession
    {
        private SmtpClient? _client;
        private SmtpWireStream? _wire;
        /// <summary>The last wire message this session sent: the next one is written into it (one message at a time).</summary>
        private WireMessage? _reusable;

        public async Task WarmUpAsync(CancellationToken ct)
        {
            if (_client is { IsConnected: true } && _wire is not null)
            {
                return;
            }
            try
            {
                (_client, _wire) = await ConnectAsync(ct);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The first message connects again and classifies the failure (unavailable, misconfigured).
                Drop();
            }
        }

        private async Task<(SmtpClient Client, SmtpWireStream Wire)> ConnectAsync(CancellationToken ct)
        {
            Drop();
            SmtpWireStream? wire = null;
            var client = await SmtpConnector.ConnectAsync(options, socket => wire = new SmtpWireStream(socket, options.CommandTimeout, options.DataTimeout), connection, ct);
            return (client, wire!);
        }

        public async Task<DeliveryResult> SendAsync(OutgoingMessage message, CancellationToken ct)
        {
            MimeMessage mime;
            try
            {
                mime = ToMime(message, _reusable);
                _reusable = mime as WireMessage ?? _reusable;
            }
            catch (Exception ex) when (ex is ParseException or FormatException or ArgumentException)
            {
                return new DeliveryResult(DeliveryOutcome.Rejected, "invalid message: " + ex.Message);
            }

            var connecting = false;
            try
            {
                if (_client is not { IsConnected: true } || _wire is null)
                {
                    connecting = true;
                    (_client, _wire) = await ConnectAsync(ct);
                    connecting = false;
                }
                _wire.BeginTransaction();
                // The envelope is the recipient (and a bcc_address copy), whatever the To and Cc headers show; its sender the
                // VERP return path when there is one.
                // A WireMessage has no header fields MailKit could read the envelope from.
                var reply = mime is not WireMessage && message.VisibleTo is null && message.VisibleCc.Count == 0 && message.EnvelopeBcc.Count == 0 && message.EnvelopeFrom is null
                    ? await _client.SendAsync(mime, ct, _wire)
                    : await _client.SendAsync(FormatOptions.Default, mime,
                        message.EnvelopeFrom is { } envelopeFrom ? MailboxAddress.Parse(envelopeFrom) : new MailboxAddress(message.From.Name, message.From.Address),
                        [mime is WireMessage bulk ? bulk.Recipient : MailboxAddress.Parse(message.To), .. message.EnvelopeBcc.Select(MailboxAddress.Parse)], ct, _wire);
                return new DeliveryResult(DeliveryOutcome.Sent, string.IsNullOrEmpty(reply) ? "250 OK" : "250 " + reply);
            }
            catch (AuthenticationException ex)
            {
                // MailKit keeps the server's reply as the inner exception: 454 is temporary, 535/534/538/530 are not.
                var code = ex.InnerException is SmtpCommandException reply ? (int)reply.StatusCode : 535;
                return Fail(code is >= 400 and < 500 ? DeliveryOutcome.Unavailable : DeliveryOutcome.Misconfigured,
                    "AUTH refused: " + ex.Message, ex);
            }
            catch (ServiceNotAuthenticatedException ex)
            {
                return Fail(DeliveryOutcome.Misconfigured, "530 authentication required: " + ex.Message, ex);
            }
            catch (SmtpCommandException ex)
            {
                return Classify(ex, connecting);
            }
            catch (NotSupportedException ex) when (connecting)
            {
                // Credentials set but no AUTH offered, or STARTTLS required and not offered: an operator's matter.
                return Fail(DeliveryOutcome.Misconfigured, ex.Message, ex);
            }
            catch (Exception ex) when (ex is IOException or SocketException or SmtpProtocolException or TimeoutException
                                           or ServiceNotConnectedException or SslHandshakeException or OperationCanceledException)
            {
                // Under TLS, SslStream wraps the wire stream's TimeoutException in an IOException: name the cause.
                var cause = ex is IOException { InnerException: TimeoutException timeout } ? timeout : ex;
                var what = $"{cause.GetType().Name}: {cause.Message}";
                if (!connecting && _wire?.PayloadWritten == true)
                {
                    // The whole message went out: the server may have queued it even if no reply reached us.
                    return Fail(DeliveryOutcome.Unknown, what, ex);
                }
                if (ex is OperationCanceledException && ct.IsCancellationRequested)
                {
                    Drop();
                    throw;
                }
                return Fail(DeliveryOutcome.Unavailable, connecting ? "connecting: " + what : what, ex);
            }
            catch (Exception ex) when (!connecting && _wire?.PayloadWritten == true && ex is not OutOfMemoryException)
            {
                // Whatever failed after the whole message went out, it may have been queued: never a second copy.
                return Fail(DeliveryOutcome.Unknown, $"{ex.GetType().Name}: {ex.Message}", ex);
            }
        }

        /// <summary>A reply the server gave (a command refused), by the command it answered.</summary>
        private DeliveryResult Classify(SmtpCommandException ex, bool connecting)
        {
            var code = (int)ex.StatusCode;
            var detail = $"{code} {ex.Message}".Trim();
            var permanent = code >= 500;
            var outcome = code == 421 ? DeliveryOutcome.Unavailable // the server is closing the channel, whatever it answered
                : connecting ? (permanent ? DeliveryOutcome.Misconfigured : DeliveryOutcome.Unavailable) // greeting, EHLO, STARTTLS
                : ex.ErrorCode switch
                {
                    // MAIL FROM: a refused sender is the configuration's; a 4xx is the server's state, not the recipient's.
                    SmtpErrorCode.SenderNotAccepted => permanent ? DeliveryOutcome.Misconfigured : DeliveryOutcome.Unavailable,
                    // RCPT TO, the DATA command, the end of DATA: about this message or recipient.
                    _ => permanent ? DeliveryOutcome.Rejected : DeliveryOutcome.Deferred,
                };
            if (outcome is not (DeliveryOutcome.Unavailable or DeliveryOutcome.Unknown) && _client is { IsConnected: false })
            {
                Drop();
            }
            return Fail(outcome, detail, null);
        }

        /// <summary>Builds the result; after Unknown or Unavailable the connection is dropped (its state is not trusted).</summary>
        private DeliveryResult Fail(DeliveryOutcome outcome, string detail, Exception? ex)
        {
            if (ex is not null)
            {
                LogFailure(logger, outcome, ex.GetType().Name, ex.Message);
            }
            if (outcome is DeliveryOutcome.Unknown or DeliveryOutcome.Unavailable or DeliveryOutcome.Misconfigured)
            {
                Drop();
            }
            return outcome == DeliveryOutcome.Unknown ? DeliveryResult.Unknown(detail) : new DeliveryResult(outcome, detail);
        }

        private void Drop()
        {
            _client?.Dispose();
            _client = null;
            _wire?.Dispose();
            _wire = null;
        }

        public async ValueTask DisposeAsync()
        {
            if (_client is { IsConnected: true } client)
            {
                try
                {
                    _wire?.BeginTransaction();
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

    [LoggerMessage(LogLevel.Warning, "SMTP delivery failed ({Outcome}, {ErrorType}): {Error}")]
    private static partial void LogFailure(ILogger logger, DeliveryOutcome outcome, string errorType, string error);
}
