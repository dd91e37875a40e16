using System.Globalization;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>
/// The operation log's read routes, the same in both services: the tenant's own log (newsletter:logs.read), its export,
/// and the platform's view across tenants (platform:admin).
/// </summary>
public static class OperationLogApi
{
    public const int MaxPageSize = 1000;

    public static IEndpointRouteBuilder MapOperationLogApi(this IEndpointRouteBuilder app, string tenantReadPolicy, string adminPolicy)
    {
        var tenant = app.MapGroup("/api/operation-log").WithTags("Operation log").RequireAuthorization(tenantReadPolicy);
        tenant.MapGet("/", List).WithName("listOperationLog")
            .WithSummary("The tenant's operation log, newest first; filter by actor, action, from, to, target; pass next_cursor as after.");
        tenant.MapGet("/export", Export).WithName("exportOperationLog")
            .WithSummary("The tenant's operation log as a CSV or NDJSON download (format=csv|ndjson), same filters, no paging.")
            .Produces(StatusCodes.Status200OK, contentType: "text/csv", additionalContentTypes: ["application/x-ndjson"])
            .ProducesValidationProblem();
        app.MapGet("/admin/operation-log", AdminList).WithTags("Admin").RequireAuthorization(adminPolicy)
            .WithName("listOperationLogAcrossTenants")
            .WithSummary("Every tenant's operation log (or one's, with tenant_id) and platform-wide changes, newest first.");
        return app;
    }

    private static async Task<Results<Ok<OperationLogPage>, ValidationProblem>> List(
        string? actor, string? action, string? from, string? to, string? target, string? after, int? limit,
        ClaimsPrincipal user, OperationLogStore store, CancellationToken ct)
    {
        var v = new Validation();
        var filter = Filter(user.TenantId(), false, actor, action, from, to, target, v);
        var (cursor, size) = Paging(after, limit, v);
        return v.IsValid ? TypedResults.Ok(await store.PageAsync(filter, cursor, size, ct)) : TypedResults.ValidationProblem(v.Errors);
    }

    private static async Task<Results<Ok<OperationLogPage>, ValidationProblem>> AdminList(
        string? tenant_id, string? actor, string? action, string? from, string? to, string? target, string? after, int? limit,
        OperationLogStore store, CancellationToken ct)
    {
        var v = new Validation();
        Guid? tenantId = null;
        if (tenant_id is { Length: > 0 })
        {
            if (Guid.TryParse(tenant_id, out var t))
            {
                tenantId = t;
            }
            else
            {
                v.Add("tenant_id", "The tenant_id is not a UUID.");
            }
        }
        var filter = Filter(tenantId, true, actor, action, from, to, target, v);
        var (cursor, size) = Paging(after, limit, v);
        return v.IsValid ? TypedResults.Ok(await store.PageAsync(filter, cursor, size, ct)) : TypedResults.ValidationProblem(v.Errors);
    }

    private static async Task<IResult> Export(
        string? format, string? actor, string? action, string? from, string? to, string? target,
        ClaimsPrincipal user, HttpContext http, OperationLogStore store, IOptions<JsonOptions> json, CancellationToken ct)
    {
        var v = new Validation();
        var kind = format is null or "" ? "csv" : format;
        if (kind is not ("csv" or "ndjson"))
        {
            v.Add("format", "The format must be csv or ndjson.");
        }
        var filter = Filter(user.TenantId(), false, actor, action, from, to, target, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var response = http.Response;
        response.ContentType = kind == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8";
        response.Headers.ContentDisposition = $"attachment; filename=\"operation-log.{kind}\"";
        response.Headers.CacheControl = "no-store";
        await using var writer = new StreamWriter(response.Body, new UTF8Encoding(false), bufferSize: 16 * 1024, leaveOpen: true);
        if (kind == "csv")
        {
            await writer.WriteLineAsync(string.Join(',', CsvHeader));
        }
        var rows = 0;
        await foreach (var e in store.StreamAsync(filter, ct))
        {
            await writer.WriteLineAsync(kind == "csv" ? CsvLine(e, json.Value.SerializerOptions) : JsonSerializer.Serialize(e, json.Value.SerializerOptions));
            // Streamed: the client sees rows as they are read instead of after the last one.
            if (++rows % 500 == 0)
            {
                await writer.FlushAsync(ct);
            }
        }
        await writer.FlushAsync(ct);
        return Results.Empty;
    }

    public static readonly string[] CsvHeader =
    [
        "id", "occurred_at", "tenant_id", "actor_kind", "actor_id", "actor_display", "action", "target", "method", "path",
        "status_code", "outcome", "client_ip", "user_agent", "before", "after", "note",
    ];

    private static string CsvLine(OperationLogEntryResponse e, JsonSerializerOptions json) => string.Join(',', new[]
    {
        e.Id.ToString(CultureInfo.InvariantCulture), e.OccurredAt.ToString("O", CultureInfo.InvariantCulture), e.TenantId,
        e.ActorKind, e.ActorId, e.ActorDisplay, e.Action, e.Target is null ? null : JsonSerializer.Serialize(e.Target, json),
        e.Method, e.Path, e.StatusCode.ToString(CultureInfo.InvariantCulture), e.Outcome, e.ClientIp, e.UserAgent,
        e.Before?.GetRawText(), e.After?.GetRawText(), e.Note,
    }.Select(Csv));

    /// <summary>RFC 4180 quoting; a cell a spreadsheet would run as a formula is prefixed with a quote mark.</summary>
    private static string Csv(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }
        if (value[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
        {
            value = "'" + value;
        }
        return value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    private static OperationLogFilter Filter(Guid? tenantId, bool allTenants, string? actor, string? action, string? from, string? to,
        string? target, Validation v) =>
        new(tenantId, allTenants, Trimmed(actor, "actor", v), Trimmed(action, "action", v), Time(from, "from", v), Time(to, "to", v),
            Trimmed(target, "target", v));

    private static (long? Cursor, int Size) Paging(string? after, int? limit, Validation v)
    {
        var size = limit ?? 100;
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        long? cursor = null;
        if (after is { Length: > 0 })
        {
            if (long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out var c))
            {
                cursor = c;
            }
            else
            {
                v.Add("after", "The after cursor is not one this route answered (next_cursor).");
            }
        }
        return (cursor, size);
    }

    private static string? Trimmed(string? value, string field, Validation v)
    {
        v.MaxLength(field, value, 320);
        return value?.Trim() is { Length: > 0 } t ? t : null;
    }

    private static DateTimeOffset? Time(string? value, string field, Validation v)
    {
        if (value is not { Length: > 0 })
        {
            return null;
        }
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
        {
            return t;
        }
        v.Add(field, $"The {field} is not an ISO 8601 time.");
        return null;
    }
}
