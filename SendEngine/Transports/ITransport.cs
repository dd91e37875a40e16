namespace SendEngine.Transports;

/// <summary>
/// What became of one message handed to a transport. The split is about what may happen next: only
/// <see cref="Deferred"/> retries the recipient, <see cref="Unavailable"/> and <see cref="Misconfigured"/> are about
/// the transport (the job pauses, the message was not attempted), and <see cref="Unknown"/> is never retried because
/// the message may have been delivered. docs/send-engine.md "Transports" maps every SMTP and Tencent event to one.
/// </summary>
public enum DeliveryOutcome
{
    /// <summary>The server/ESP accepted the message.</summary>
    Sent,

    /// <summary>This recipient refused for now (4xx to RCPT or to the end of DATA, Tencent per-recipient throttling): retry this recipient later.</summary>
    Deferred,

    /// <summary>This recipient refused for good (5xx to RCPT or DATA, invalid message/address).</summary>
    Rejected,

    /// <summary>
    /// The whole message was handed over but no reply came (timeout, I/O error, dropped connection after the final
    /// dot; Tencent request sent, no answer): NEVER retried.
    /// </summary>
    Unknown,

    /// <summary>
    /// The transport failed before the message was completely handed over (connect, TLS, 421, 4xx to MAIL FROM, I/O
    /// error before the end of DATA, Tencent unreachable/5xx/InternalError before acceptance): not an attempt; the job
    /// pauses and retries later.
    /// </summary>
    Unavailable,

    /// <summary>
    /// Will not heal by itself: 535/530/534/538 on AUTH, 5xx to MAIL FROM (sender refused), Tencent
    /// AuthFailure/permission/unverified sender: the job pauses for an operator.
    /// </summary>
    Misconfigured,
}

/// <param name="Detail">The server's reply (or the error), stored with the recipient. An <see cref="DeliveryOutcome.Unknown"/>
/// detail starts with <see cref="DeliveryResult.UnknownPrefix"/> and ends with <see cref="DeliveryResult.UnknownSuffix"/>.</param>
/// <param name="ProviderMessageId">An ESP's own id when it assigns one (SMTP: null, the Message-ID header is ours).</param>
public sealed record DeliveryResult(DeliveryOutcome Outcome, string Detail, string? ProviderMessageId = null)
{
    public const string UnknownPrefix = "outcome unknown: ";
    public const string UnknownSuffix = "; not retried to avoid a duplicate";

    /// <summary>An <see cref="DeliveryOutcome.Unknown"/> result whose detail says why, in the form the recipients API shows.</summary>
    public static DeliveryResult Unknown(string why) => new(DeliveryOutcome.Unknown, UnknownPrefix + why + UnknownSuffix);
}

/// <summary>A way to hand messages to a mail server or ESP: SMTP (MailKit) and Tencent SES (SendEmail API).</summary>
public interface ITransport
{
    string Name { get; }

    /// <summary>A session used by one worker at a time (an SMTP connection, kept open and reused).</summary>
    ITransportSession OpenSession();
}

public interface ITransportSession : IAsyncDisposable
{
    /// <summary>
    /// Sends one message; returns the outcome instead of throwing for delivery errors. Throws
    /// <see cref="OperationCanceledException"/> only when <paramref name="ct"/> is cancelled before the message was
    /// completely handed over; after that point a cancellation is an <see cref="DeliveryOutcome.Unknown"/> result.
    /// </summary>
    Task<DeliveryResult> SendAsync(OutgoingMessage message, CancellationToken ct);

    /// <summary>
    /// Opens the connection ahead of the first message, so it is ready when the first recipient is (a bulk job's
    /// workers call it while the first batch is claimed and checked). Never fails: a failure is forgotten, and the
    /// first <see cref="SendAsync"/> connects again and reports it as it would have anyway.
    /// </summary>
    Task WarmUpAsync(CancellationToken ct) => Task.CompletedTask;
}
