namespace Newsletter.Contracts.Webhooks;

// Send Engine: tenants' event webhook endpoints (Standard Webhooks). JSON is snake_case.

/// <summary>The event types an endpoint may subscribe to; each covers bulk jobs and transactional mail.</summary>
public static class WebhookEventTypes
{
    public const string Sent = "sent";
    public const string Delivered = "delivered";
    public const string Deferred = "deferred";
    public const string Bounced = "bounced";
    public const string Complained = "complained";
    public const string Opened = "opened";
    public const string Clicked = "clicked";
    public const string Unsubscribed = "unsubscribed";
    public const string Rejected = "rejected";
    /// <summary>The tenant's bounce or complaint rate reached the warning threshold (docs/deliverability.md).</summary>
    public const string ReputationWarning = "reputation.warning";
    /// <summary>The tenant's bulk mail (or one job: a likely purchased list) was paused by the reputation guard or an operator.</summary>
    public const string ReputationPaused = "reputation.paused";

    public static IReadOnlyList<string> All { get; } =
        [Sent, Delivered, Deferred, Bounced, Complained, Opened, Clicked, Unsubscribed, Rejected, ReputationWarning, ReputationPaused];
}

/// <summary>The state of an endpoint: <c>enabled</c>, <c>disabled</c> (by the tenant) or <c>failing_disabled</c> (failed for the configured window).</summary>
public static class WebhookEndpointStates
{
    public const string Enabled = "enabled";
    public const string Disabled = "disabled";
    public const string FailingDisabled = "failing_disabled";
}

public sealed record CreateWebhookEndpointRequest(string? Url, IReadOnlyList<string>? EventTypes, string? Description);

/// <summary>Fields left null are unchanged; <c>enabled: true</c> also re-enables an endpoint disabled for failing.</summary>
public sealed record UpdateWebhookEndpointRequest(string? Url, IReadOnlyList<string>? EventTypes, string? Description, bool? Enabled);

/// <summary><c>overlap_seconds</c>: how long the previous secret keeps signing too (default 24 h, at most 7 days).</summary>
public sealed record RotateWebhookSecretRequest(int? OverlapSeconds);

/// <param name="ConsecutiveFailures">Failed attempts in a row; at the configured number the endpoint is paused.</param>
/// <param name="PausedUntil">Set while paused: its events wait (kept, not attempted) and one is sent as a probe after this time; a success resumes them all.</param>
public sealed record WebhookEndpointResponse(
    string EndpointId,
    string TenantId,
    string Url,
    IReadOnlyList<string> EventTypes,
    string? Description,
    string State,
    string? DisabledReason,
    DateTimeOffset? DisabledAt,
    DateTimeOffset? FailingSince,
    int ConsecutiveFailures,
    DateTimeOffset? PausedUntil,
    DateTimeOffset? PreviousSecretExpiresAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>The endpoint with its signing secret (<c>whsec_</c> + base64), answered once: on creation and on rotation.</summary>
public sealed record WebhookEndpointSecretResponse(WebhookEndpointResponse Endpoint, string Secret);

public sealed record WebhookEndpointList(IReadOnlyList<WebhookEndpointResponse> Items);

/// <summary>One POST to an endpoint: the request as sent, and the answer (status and its first 1 KB), or the error.</summary>
public sealed record WebhookAttemptResponse(
    long AttemptId,
    string MessageId,
    string EventType,
    DateTimeOffset AttemptedAt,
    string Url,
    string RequestBody,
    int? ResponseStatus,
    string? ResponseBody,
    string? Error,
    int LatencyMs,
    bool Replay);

/// <summary>A page, newest first; pass <c>next_before</c> as <c>before</c> for the next one.</summary>
public sealed record WebhookAttemptPage(IReadOnlyList<WebhookAttemptResponse> Items, long? NextBefore);

/// <summary>One event queued for an endpoint; <c>message_id</c> is the stable <c>webhook-id</c> header.</summary>
public sealed record WebhookMessageResponse(
    string MessageId,
    string EventType,
    string Status,
    int Attempts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? NextAttemptAt,
    DateTimeOffset? CompletedAt,
    string? LastError);

public sealed record WebhookMessagePage(IReadOnlyList<WebhookMessageResponse> Items, long? NextBefore);
