using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Transactional;

namespace SendEngine.Features.Transactional;

/// <summary>One error of the transactional API: its seed name, numeric code and HTTP status.</summary>
public sealed record TransactionalError(string Name, int Code, int Status)
{
    /// <summary>The seed-shaped answer with <paramref name="message"/>.</summary>
    public IResult Result(string message) =>
        TypedResults.Json(new TransactionalErrorResponse(new TransactionalErrorBody(Code, Name, message)), statusCode: Status);

    /// <summary>Writes the seed-shaped answer outside an endpoint (authentication handler, middleware).</summary>
    public Task WriteAsync(HttpContext context, string message)
    {
        var json = context.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        context.Response.StatusCode = Status;
        return context.Response.WriteAsJsonAsync(new TransactionalErrorResponse(new TransactionalErrorBody(Code, Name, message)), json,
            contentType: "application/json; charset=utf-8", context.RequestAborted);
    }
}

/// <summary>
/// The error table of seed 003. The seed fixes INVALID_API_KEY (403, code 10) and names EXPIRED_API_KEY (403),
/// VALIDATION_ERROR and GENERAL_ERROR without codes; the other codes are ours: 1-9 server side, 10-19 the API key,
/// 20-29 the request, 30-39 lookups (docs/send-engine.md).
/// </summary>
public static class TransactionalErrors
{
    public static readonly TransactionalError GeneralError = new(TransactionalErrorNames.GeneralError, 1, StatusCodes.Status500InternalServerError);
    /// <summary>Member Center could not be asked about a key that is not cached; the caller may retry.</summary>
    public static readonly TransactionalError ServiceUnavailable = new(TransactionalErrorNames.ServiceUnavailable, 2, StatusCodes.Status503ServiceUnavailable);
    public static readonly TransactionalError InvalidApiKey = new(TransactionalErrorNames.InvalidApiKey, 10, StatusCodes.Status403Forbidden);
    public static readonly TransactionalError ExpiredApiKey = new(TransactionalErrorNames.ExpiredApiKey, 11, StatusCodes.Status403Forbidden);
    public static readonly TransactionalError TooManyFailedApiKeys = new(TransactionalErrorNames.TooManyFailedApiKeys, 12, StatusCodes.Status429TooManyRequests);
    public static readonly TransactionalError ValidationError = new(TransactionalErrorNames.ValidationError, 20, StatusCodes.Status400BadRequest);
    public static readonly TransactionalError RequestTooLarge = new(TransactionalErrorNames.RequestTooLarge, 21, StatusCodes.Status413PayloadTooLarge);
    public static readonly TransactionalError NotFound = new(TransactionalErrorNames.NotFound, 30, StatusCodes.Status404NotFound);
    public static readonly TransactionalError SendingPaused = new(TransactionalErrorNames.SendingPaused, 40, StatusCodes.Status409Conflict);
}
