using MimeKit;

namespace SendEngine.Features.Delivery;

public enum DeliveryOutcome
{
    Sent,
    /// <summary>This recipient refused for now (4xx): retried later.</summary>
    Deferred,
    /// <summary>This recipient refused for good (5xx).</summary>
    Rejected,
    /// <summary>Handed over, no answer: never retried.</summary>
    Unknown,
    /// <summary>The transport failed before the message was handed over: the job pauses.</summary>
    Unavailable,
    /// <summary>Will not heal by itself (authentication refused): the job pauses for an operator.</summary>
    Misconfigured,
}

/// <param name="Detail">The server's reply (or the error), stored with the recipient.</param>
/// <param name="ProviderMessageId">An ESP's own id when it assigns one (SMTP: null, the Message-ID header is ours).</param>
public sealed record DeliveryResult(DeliveryOutcome Outcome, string Detail, string? ProviderMessageId = null);

/// <summary>A way to hand messages to a mail server or ESP. SMTP (MailKit) and Tencent SES (SendEmail API).</summary>
public interface IDeliveryTransport
{
    string Name { get; }

    /// <summary>A session used by one worker at a time (an SMTP connection, kept open and reused).</summary>
    IDeliverySession OpenSession();
}

public interface IDeliverySession : IAsyncDisposable
{
    /// <summary>Sends one message; returns the outcome instead of throwing for delivery errors.</summary>
    Task<DeliveryResult> SendAsync(MimeMessage message, CancellationToken ct);
}
