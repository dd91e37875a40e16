using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Turns exceptions into RFC 7807 answers. Bad input (unreadable JSON, wrong types) is the caller's 400;
/// anything else is logged and answered as a 500 without internals.
/// </summary>
public sealed partial class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException { InnerException: UnstorableTextException text } => (400, "Malformed request body", $"{text.Message} ({JsonDetail(text)})"),
            BadHttpRequestException { InnerException: JsonException json } => (400, "Malformed request body", JsonDetail(json)),
            BadHttpRequestException bad => (bad.StatusCode, "Bad request", bad.Message),
            JsonException json => (400, "Malformed request body", JsonDetail(json)),
            // ASP.NET's form reader refuses forms over its limits (1024 fields, 4 MB values) with this exception.
            InvalidDataException when httpContext.Request.HasFormContentType
                => (400, "Malformed request body", "The form could not be read: too many fields or a value too long."),
            // ASP.NET's JSON reader throws this for a charset it cannot decode (charset=bogus, utf-7).
            InvalidOperationException or NotSupportedException when UnknownCharset(httpContext.Request) is { } charset
                => (415, "Unsupported media type", $"The request body's charset '{charset}' is not supported; send UTF-8."),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested => (499, "Client closed request", null),
            _ => (500, "An unexpected error occurred", "The error was logged; retry later or contact the operator with the trace id."),
        };
        if (status >= 500)
        {
            LogUnhandled(logger, exception, httpContext.Request.Method, httpContext.Request.Path);
        }

        httpContext.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }

    private static string? UnknownCharset(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || type.Charset is not { Length: > 0 } charset)
        {
            return null;
        }
        var name = charset.Value!.Trim('"');
        try
        {
            Encoding.GetEncoding(name);
            return null;
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException) // unknown; UTF-7 is refused
        {
            return name;
        }
    }

    // The path of the offending field helps the caller; the exception text would leak type names.
    private static string JsonDetail(JsonException json) =>
        json.Path is { Length: > 0 } path ? $"The JSON body is invalid at '{path}'." : "The JSON body is invalid.";

    [LoggerMessage(LogLevel.Error, "Unhandled exception for {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception ex, string method, string path);
}
