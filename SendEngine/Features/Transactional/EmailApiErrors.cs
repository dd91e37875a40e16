namespace SendEngine.Features.Transactional;

/// <summary>Interim: replaced by the API-key feature's TransactionalErrors once merged.</summary>
internal static class TransactionalErrors
{
    public sealed record ErrorBody(ErrorDetail Error);
    public sealed record ErrorDetail(int Code, string Name, string Message);

    public static Guid TenantOf(HttpContext http) => (Guid)http.Items["tenant"]!;

    public static Task<bool?> SenderAllowedAsync(HttpContext http, Guid tenantId, string fromEmail, CancellationToken ct) => Task.FromResult<bool?>(null);

    public static IResult TooLarge(string message) => Results.Json(new ErrorBody(new ErrorDetail(413, "REQUEST_TOO_LARGE", message)), statusCode: 413);

    public static IResult Validation(IReadOnlyDictionary<string, string> fields, int status = 400) =>
        Results.Json(new ErrorBody(new ErrorDetail(status, "VALIDATION_ERROR", string.Join(" ", fields.Select(f => $"{f.Key}: {f.Value}")))), statusCode: status);

    public static IResult NotFound(string what, string id) => Results.Json(new ErrorBody(new ErrorDetail(404, "NOT_FOUND", $"No {what} {id}.")), statusCode: 404);
}
