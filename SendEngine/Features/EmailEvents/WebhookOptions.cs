using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.EmailEvents;

public enum WebhookVerification
{
    /// <summary>Nothing is checked: only with <see cref="WebhookOptions.AllowUnauthenticated"/>, never in Production (otherwise the host does not start).</summary>
    None,
    /// <summary>X-Tencent-Token / X-Tencent-Timestamp / X-Tencent-Signature (HMAC-SHA256 with <see cref="WebhookOptions.SigningKey"/>).</summary>
    Signature,
    /// <summary>A secret in the callback URL: its query (<see cref="WebhookOptions.TokenQueryParameter"/>) or its user
    /// info (HTTP basic auth, the secret as password), or a header (<see cref="WebhookOptions.TokenHeader"/>).</summary>
    Token,
}

/// <summary>TencentSes:Webhook — how POST /api/tencent/ses/webhook authenticates callbacks (docs/tencent-ses.md).</summary>
public sealed class WebhookOptions
{
    public const string Section = "TencentSes:Webhook";

    public WebhookVerification Verification { get; set; } = WebhookVerification.None;

    /// <summary>Lets <see cref="WebhookVerification.None"/> start, for local development only: anyone who can reach the
    /// route can then suppress and unsubscribe the tenants' readers. Refused in Production even when set.</summary>
    public bool AllowUnauthenticated { get; set; }

    /// <summary>Signature mode: the pre-shared HMAC-SHA256 key.</summary>
    public string? SigningKey { get; set; }

    /// <summary>Signature mode: when set, X-Tencent-Token must equal it.</summary>
    public string? ExpectedToken { get; set; }

    /// <summary>Signature mode: how far X-Tencent-Timestamp may be from now.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan TimestampTolerance { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>Token mode: the shared secret (at least 16 characters).</summary>
    public string? SecretToken { get; set; }

    /// <summary>Token mode: the query parameter carrying it (e.g. …/webhook?token=…); empty disables the query.</summary>
    public string? TokenQueryParameter { get; set; } = "token";

    /// <summary>Token mode: the header carrying it; empty disables the header.</summary>
    public string? TokenHeader { get; set; } = "X-Webhook-Token";

    [Range(1024, 16 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 256 * 1024;

    /// <summary>Tencent wants a 200 within 5 s: a request whose events are not stored by then (database stalled, writer
    /// queue full) is answered 503 so that Tencent retries, instead of being held open. Measured from the request's start.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan AnswerDeadline { get; set; } = TimeSpan.FromSeconds(4);
}

/// <summary>Refuses a configuration that would accept forged callbacks: any mode incomplete; None unless explicitly
/// allowed for development, whatever the environment is called, and never in Production.</summary>
public sealed class WebhookOptionsValidator(IHostEnvironment environment) : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions o) => o.Verification switch
    {
        WebhookVerification.None when environment.IsProduction() =>
            ValidateOptionsResult.Fail("TencentSes:Webhook:Verification is None in Production: set Signature (with SigningKey) or Token (with SecretToken)."),
        WebhookVerification.None when !o.AllowUnauthenticated =>
            ValidateOptionsResult.Fail("TencentSes:Webhook:Verification is None: set Token (with SecretToken) or Signature (with SigningKey), "
                + "or, for local development only, TencentSes:Webhook:AllowUnauthenticated=true."),
        WebhookVerification.Signature when string.IsNullOrEmpty(o.SigningKey) || o.SigningKey.Length < 16 =>
            ValidateOptionsResult.Fail("TencentSes:Webhook:SigningKey (at least 16 characters) is required with Verification=Signature."),
        WebhookVerification.Token when string.IsNullOrEmpty(o.SecretToken) || o.SecretToken.Length < 16 =>
            ValidateOptionsResult.Fail("TencentSes:Webhook:SecretToken (at least 16 characters) is required with Verification=Token."),
        WebhookVerification.Token when string.IsNullOrEmpty(o.TokenQueryParameter) && string.IsNullOrEmpty(o.TokenHeader) =>
            ValidateOptionsResult.Fail("TencentSes:Webhook: Token mode needs TokenQueryParameter or TokenHeader."),
        _ => ValidateOptionsResult.Success,
    };
}

/// <summary>EmailEvents — the processor.</summary>
public sealed class EmailEventOptions
{
    public const string Section = "EmailEvents";

    [Range(1, 5000)]
    public int BatchSize { get; set; } = 200;

    /// <summary>How often the processor looks for work when nothing signalled it (other processes' events, retries).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>An event whose message id is not (yet) known is retried this long (the send result may still be committing).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan UnknownMessageGrace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Attempts before an event whose effects keep failing is recorded as failed. Member Center reports are not
    /// bound by it: they are retried until Member Center acknowledges them.</summary>
    [Range(1, 1000)]
    public int MaxAttempts { get; set; } = 20;

    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The wait before the next try after <paramref name="failedAttempts"/> failures: doubling from
    /// <see cref="RetryBaseDelay"/>, at most an hour. Events and Member Center reports back off alike.</summary>
    public TimeSpan RetryDelay(int failedAttempts) =>
        TimeSpan.FromTicks(Math.Min(RetryBaseDelay.Ticks * (1L << Math.Clamp(failedAttempts - 1, 0, 12)), TimeSpan.FromHours(1).Ticks));

    /// <summary>This many soft bounces of an address within <see cref="SoftBounceWindow"/> count as a hard bounce.</summary>
    [Range(1, 1000)]
    public int SoftBounceThreshold { get; set; } = 3;

    [Range(typeof(TimeSpan), "00:00:01", "365.00:00:00")]
    public TimeSpan SoftBounceWindow { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Concurrent batch inserts of the webhook's group-commit writer.</summary>
    [Range(1, 32)]
    public int Writers { get; set; } = 2;

    /// <summary>Run the processor in this process (a webhook-only instance may turn it off).</summary>
    public bool ProcessorEnabled { get; set; } = true;
}
