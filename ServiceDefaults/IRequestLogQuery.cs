using Microsoft.AspNetCore.Http;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// The request log leaves query strings out, since elsewhere they carry link tokens. A service registers one of these
/// for a route whose query is worth seeing (with its secrets redacted); the first non-null answer is appended to the
/// logged path.
/// </summary>
public interface IRequestLogQuery
{
    /// <summary>The query to log for this request, starting with '?', or null to log none.</summary>
    string? LoggableQuery(HttpContext context);
}
