using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;
using Newsletter.Contracts.Webhooks;
using SendEngine.Features.Metrics;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Features.EmailEvents;

/// <summary>
/// POST /api/tencent/ses/webhook: authenticate, parse, store (group commit), answer 200. Processing happens later in
/// <see cref="EmailEventProcessor"/>, so the answer does not depend on Member Center or on the effects.
/// </summary>
public static partial class WebhookApi
{
    public const string Path = "/api/tencent/ses/webhook";

    public sealed record TencentWebhookResponse(int Received, int Stored, int Duplicates);

    public static IEndpointRouteBuilder MapTencentWebhook(this IEndpointRouteBuilder app)
    {
        app.MapPost(Path, Receive).AllowAnonymous().WithTags("Tencent SES").WithName("receiveTencentSesEvents")
            .WithSummary("Tencent Cloud SES event callback (spec 001 or Tencent's format); authenticated per TencentSes:Webhook.")
            .DisableAntiforgery()
            // Its own request log is the webhook gateway's (docs/security.md V8): an operation-log row per callback was
            // an extra INSERT and commit per event, 643 WAL bytes and a fifth of Send Engine's CPU under load.
            .WithoutOperationLog();
        return app;
    }

    /// <summary>
    /// The query string of a callback for the request log, the token replaced by "REDACTED": the configured
    /// <see cref="WebhookOptions.TokenQueryParameter"/> and "token" (the usual name, even when the query is not accepted
    /// and a caller sends it anyway). Empty when there is no query.
    /// </summary>
    public static string RedactedQuery(HttpRequest request, string? tokenParameter)
    {
        if (!request.QueryString.HasValue)
        {
            return "";
        }
        return QueryString.Create(request.Query.Select(p => KeyValuePair.Create(p.Key,
            p.Key.Equals("token", StringComparison.OrdinalIgnoreCase)
            || (!string.IsNullOrEmpty(tokenParameter) && p.Key.Equals(tokenParameter, StringComparison.OrdinalIgnoreCase))
                ? new Microsoft.Extensions.Primitives.StringValues(Redacted) : p.Value))).ToUriComponent();
    }

    public const string Redacted = "REDACTED";

    private static async Task<Results<Ok<TencentWebhookResponse>, ProblemHttpResult, ValidationProblem>> Receive(
        HttpContext http, WebhookAuthenticator auth, EmailEventWriter writer, SendEngineMetrics metrics,
        IOptionsMonitor<WebhookOptions> options, IOptionsMonitor<WebhookGatewayOptions> gateway, TimeProvider clock, ILoggerFactory loggers,
        CancellationToken ct)
    {
        var logger = loggers.CreateLogger(typeof(WebhookApi).FullName!);
        var o = options.CurrentValue;
        // The gateway log entry of every request (docs/send-engine.md, "Webhook gateway"): refused ones are queued
        // without waiting, accepted ones are inserted with their events.
        GatewayEntry Entry(ReadOnlySpan<byte> body, string verification, int status, string? error)
        {
            var entry = GatewayRecorder.Create(http.Request, body, http.Request.ContentLength ?? body.Length, o, gateway.CurrentValue, clock.GetUtcNow());
            entry.Verification = verification;
            entry.StatusCode = status;
            entry.Error = error;
            http.Response.Headers[GatewayRecorder.EntryHeader] = entry.Id.ToString();
            return entry;
        }
        // Started now so that a slow body counts too; only the store waits on it (parsing is quick).
        using var deadline = new CancellationTokenSource(o.AnswerDeadline, clock);
        var max = o.MaxBodyBytes;
        if (http.Request.ContentLength > max)
        {
            writer.Record(Entry([], GatewayVerifications.TooLarge, 413, $"The body must be at most {max} bytes."));
            return Reject(metrics, logger, 413, "body_too_large", "Payload too large", $"The body must be at most {max} bytes.");
        }
        var body = await ReadBodyAsync(http.Request.BodyReader, max, ct);
        if (body is null)
        {
            writer.Record(Entry([], GatewayVerifications.TooLarge, 413, $"The body must be at most {max} bytes."));
            return Reject(metrics, logger, 413, "body_too_large", "Payload too large", $"The body must be at most {max} bytes.");
        }
        if (auth.Check(http.Request, body) is { } authError)
        {
            metrics.SignatureFailure(authError);
            var detail = authError switch
            {
                "stale_timestamp" => "X-Tencent-Timestamp is missing, malformed or outside the accepted window.",
                "missing_signature" => "X-Tencent-Timestamp and X-Tencent-Signature are required.",
                "missing_token" => "The webhook token is missing.",
                _ => "The callback could not be authenticated.",
            };
            // The reasons are the gateway's verification values (bad_signature, stale_timestamp, bad_token…).
            writer.Record(Entry(body, authError, 401, detail));
            return Reject(metrics, logger, 401, authError, "Unauthorized", detail);
        }
        var verification = o.Verification == WebhookVerification.None ? GatewayVerifications.Unverified : GatewayVerifications.Ok;
        List<ParsedEmailEvent> events;
        try
        {
            events = EmailEventParser.Parse(body, clock.GetUtcNow());
        }
        catch (EmailEventParseException ex)
        {
            metrics.Rejected(ex.Errors.Count > 0 ? "invalid_event" : "malformed_json");
            LogRejected(logger, 400, ex.Errors.Count > 0 ? "invalid_event" : "malformed_json", ex.Message);
            writer.Record(Entry(body, GatewayVerifications.Invalid, 400, ex.Message));
            return ex.Errors.Count > 0
                ? TypedResults.ValidationProblem(ex.Errors, detail: ex.Message, title: "Invalid event")
                : TypedResults.Problem(statusCode: 400, title: "Malformed body", detail: ex.Message);
        }

        // The body as the events keep it (their payloads, links' tokens redacted): not stored when every event is new,
        // since the events then hold it; no second decoding of the request on the hot path.
        var accepted = Entry([], verification, 200, null);
        accepted.Body = events.Count == 1 ? events[0].Payload : "[" + string.Join(",", events.Select(e => e.Payload)) + "]";
        accepted.BodyTruncated = false;
        accepted.Events = events.Count;
        accepted.EventTypes = events.Select(e => e.EventType).ToArray();
        HashSet<string> inserted;
        try
        {
            using var storeCt = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
            inserted = await writer.WriteAsync(events, accepted, storeCt.Token);
        }
        catch (EmailEventWriterStoppedException) when (!ct.IsCancellationRequested)
        {
            return Unavailable(http, "Shutting down", "The service is stopping and the event was not stored; retry later.");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            LogDeadline(logger, events.Count, o.AnswerDeadline.TotalMilliseconds);
            return Unavailable(http, "Event store too slow", "The event was not stored within the answer deadline; retry later "
                + "(it may still be stored meanwhile, and the retry is then counted a duplicate).");
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // Not stored: Tencent retries a non-200 answer. (A request the client aborted is not answered at all.)
            return Unavailable(http, "Event store unavailable", "The event was not stored; retry later.");
        }
        var stored = 0;
        foreach (var e in events)
        {
            var isNew = inserted.Contains(e.IdempotencyKey);
            stored += isNew ? 1 : 0;
            metrics.Callback(e.EventType, isNew ? "stored" : "duplicate");
        }
        return TypedResults.Ok(new TencentWebhookResponse(events.Count, stored, events.Count - stored));
    }

    /// <summary>503 with Retry-After: Tencent retries a non-200 answer, and a repeated event is stored once.</summary>
    private static ProblemHttpResult Unavailable(HttpContext http, string title, string detail)
    {
        // Not stored, so there is no log entry to name.
        http.Response.Headers.Remove(GatewayRecorder.EntryHeader);
        http.Response.Headers.RetryAfter = RetryAfterSeconds;
        return TypedResults.Problem(statusCode: 503, title: title, detail: detail);
    }

    private const string RetryAfterSeconds = "5";

    private static ProblemHttpResult Reject(SendEngineMetrics metrics, ILogger logger, int status, string reason, string title, string detail)
    {
        metrics.Rejected(reason);
        LogRejected(logger, status, reason, detail);
        return TypedResults.Problem(statusCode: status, title: title, detail: detail);
    }

    /// <summary>The whole body, or null when it exceeds <paramref name="max"/> bytes.</summary>
    private static async Task<byte[]?> ReadBodyAsync(PipeReader reader, int max, CancellationToken ct)
    {
        while (true)
        {
            var result = await reader.ReadAsync(ct);
            var buffer = result.Buffer;
            if (buffer.Length > max)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                return null;
            }
            if (result.IsCompleted)
            {
                var bytes = buffer.ToArray();
                reader.AdvanceTo(buffer.End);
                return bytes;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Webhook request with {Events} events answered 503: not stored within the {DeadlineMs} ms answer deadline")]
    private static partial void LogDeadline(ILogger logger, int events, double deadlineMs);

    [LoggerMessage(LogLevel.Warning, "Webhook request refused ({Status}, {Reason}): {Detail}")]
    private static partial void LogRejected(ILogger logger, int status, string reason, string detail);
}

/// <summary>Logs the webhook's query with the token redacted (Tencent's callback URL is typed in by hand).</summary>
internal sealed class WebhookRequestLogQuery(IOptionsMonitor<WebhookOptions> webhook) : IRequestLogQuery
{
    public string? LoggableQuery(HttpContext context) => context.Request.Path.StartsWithSegments(WebhookApi.Path)
        ? WebhookApi.RedactedQuery(context.Request, webhook.CurrentValue.TokenQueryParameter)
        : null;
}
