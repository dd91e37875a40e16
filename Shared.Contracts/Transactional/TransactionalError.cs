namespace Newsletter.Contracts.Transactional;

/// <summary>
/// The seed 003 error body, used on the transactional API (/api/v1/...) only:
/// <c>{"error": {"code": 10, "name": "INVALID_API_KEY", "message": "..."}}</c>. Every other route answers problem+json.
/// </summary>
public sealed record TransactionalErrorResponse(TransactionalErrorBody Error);

public sealed record TransactionalErrorBody(int Code, string Name, string Message);

/// <summary>The error names of the transactional API (docs/send-engine.md lists codes and statuses).</summary>
public static class TransactionalErrorNames
{
    public const string GeneralError = "GENERAL_ERROR";
    public const string ServiceUnavailable = "SERVICE_UNAVAILABLE";
    public const string InvalidApiKey = "INVALID_API_KEY";
    public const string ExpiredApiKey = "EXPIRED_API_KEY";
    public const string TooManyFailedApiKeys = "TOO_MANY_FAILED_API_KEYS";
    public const string ValidationError = "VALIDATION_ERROR";
    public const string RequestTooLarge = "REQUEST_TOO_LARGE";
    public const string NotFound = "NOT_FOUND";
    /// <summary>A platform operator paused the tenant's transactional mail too (docs/deliverability.md).</summary>
    public const string SendingPaused = "SENDING_PAUSED";
}
