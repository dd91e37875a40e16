using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>Marks an endpoint whose changes are not written to the operation log (it keeps a request log of its own).</summary>
public sealed class ExcludeFromOperationLogMetadata
{
    public static readonly ExcludeFromOperationLogMetadata Instance = new();
}

/// <summary>
/// Writes one operation-log row for each POST/PUT/PATCH/DELETE under /api or /admin that reached an endpoint and either
/// changed something (2xx) or refused an authenticated caller (403, recorded as denied). Runs around authorization, so
/// it sees the principal the endpoint's policy authenticated and the 403 that policy answered.
/// </summary>
public sealed partial class OperationLogMiddleware(RequestDelegate next, OperationLogWriter writer, TimeProvider clock,
    IOptions<JsonOptions> json, ILogger<OperationLogMiddleware> logger)
{
    public const int MaxSnapshotBytes = 4096;
    private const string EmailClaim = "email";
    private const string NameClaim = "name";
    private const string SubjectClaim = "sub";

    public async Task InvokeAsync(HttpContext context)
    {
        // Routing ran first (WebApplication puts it at the front), so an excluded endpoint costs no scope either.
        if (!IsChange(context.Request) || context.GetEndpoint()?.Metadata.GetMetadata<ExcludeFromOperationLogMetadata>() is not null)
        {
            await next(context);
            return;
        }
        var scope = (OperationLogScope)context.RequestServices.GetService(typeof(IOperationLog))!;
        await next(context);

        var status = context.Response.StatusCode;
        var denied = status == StatusCodes.Status403Forbidden && context.User.Identity?.IsAuthenticated == true;
        if (status is < 200 or > 299 && !denied
            || context.GetEndpoint() is not { } endpoint
            || endpoint.Metadata.GetMetadata<ExcludeFromOperationLogMetadata>() is not null)
        {
            return;
        }
        var entry = Build(context, endpoint, scope, denied);
        try
        {
            // Not the request's token: a caller that hung up after its change was made must not cost the record.
            await writer.WriteAsync(entry, CancellationToken.None);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
        {
            // The change is made and answered; the log says loudly that its record is missing.
            LogWriteFailed(logger, entry.Action, entry.Method, entry.Path, entry.StatusCode, ex);
        }
    }

    private static bool IsChange(HttpRequest request) =>
        (HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method)
            || HttpMethods.IsPatch(request.Method) || HttpMethods.IsDelete(request.Method))
        && (request.Path.StartsWithSegments("/api") || request.Path.StartsWithSegments("/admin"));

    private OperationLogEntry Build(HttpContext context, Endpoint endpoint, OperationLogScope scope, bool denied)
    {
        var user = context.User;
        var (kind, actorId) = Actor(user);
        var routeValues = context.Request.RouteValues;
        var target = routeValues.Count == 0 ? null : JsonSerializer.Serialize(
            routeValues.ToDictionary(kv => kv.Key, kv => MaskAddress(Convert.ToString(kv.Value, System.Globalization.CultureInfo.InvariantCulture))));
        var notes = new List<string>();
        string? before = null, after = null;
        if (scope.Described && !denied)
        {
            before = Snapshot("before", scope.Before, notes);
            after = Snapshot("after", scope.After, notes);
        }
        var userAgent = context.Request.Headers.UserAgent.ToString();
        return new OperationLogEntry
        {
            OccurredAt = clock.GetUtcNow(),
            TenantId = TenantOf(user, routeValues) ?? scope.TenantId,
            ActorKind = kind,
            ActorId = Truncate(actorId, 200),
            ActorDisplay = Truncate(user.FindFirst(EmailClaim)?.Value ?? user.FindFirst(NameClaim)?.Value, 320),
            Action = Truncate((endpoint as RouteEndpoint)?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName
                ?? (endpoint as RouteEndpoint)?.RoutePattern.RawText ?? endpoint.DisplayName ?? "unknown", 100)!,
            Target = target,
            Method = context.Request.Method,
            Path = Truncate(ServiceDefaultsExtensions.MaskAddresses(context.Request.PathBase + context.Request.Path), 2000)!,
            StatusCode = context.Response.StatusCode,
            Outcome = denied ? OperationLogOutcomes.Denied : OperationLogOutcomes.Succeeded,
            ClientIp = context.Connection.RemoteIpAddress?.ToString(),
            UserAgent = userAgent.Length == 0 ? null : Truncate(userAgent, 500),
            Before = before,
            After = after,
            Note = notes.Count == 0 ? null : string.Join("; ", notes),
        };
    }

    /// <summary>An X-Pigeon-Api-Key, else a person (a subject that is not the client itself), else the client.</summary>
    private static (string Kind, string? Id) Actor(ClaimsPrincipal user)
    {
        if (user.FindFirst(ClaimNames.ApiKeyId)?.Value is { } keyId)
        {
            return (OperationLogActorKinds.ApiKey, keyId);
        }
        var clientId = user.FindFirst(ClaimNames.ClientId)?.Value;
        var subject = user.FindFirst(SubjectClaim)?.Value ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value;
        return subject is not null && subject != clientId
            ? (OperationLogActorKinds.Person, subject)
            : (OperationLogActorKinds.Client, clientId ?? subject);
    }

    /// <summary>The token's tenant; for an admin route, the tenant it names ({tenantId} or {tenant_id}).</summary>
    private static Guid? TenantOf(ClaimsPrincipal user, RouteValueDictionary routeValues)
    {
        if (Guid.TryParse(user.FindFirst(ClaimNames.TenantId)?.Value, out var fromToken))
        {
            return fromToken;
        }
        foreach (var name in (string[])["tenantId", "tenant_id"])
        {
            if (routeValues.TryGetValue(name, out var v) && Guid.TryParse(Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture), out var fromRoute))
            {
                return fromRoute;
            }
        }
        return null;
    }

    private string? Snapshot(string which, object? value, List<string> notes)
    {
        var node = OperationLogRedactor.ToRedactedNode(value, json.Value.SerializerOptions);
        if (node is null)
        {
            return null;
        }
        var text = node.ToJsonString();
        // Everything in a row is text PostgreSQL stores; a NUL would fail the INSERT.
        if (!StorableText.IsStorable(text))
        {
            notes.Add($"{which} omitted: not storable text");
            return null;
        }
        var bytes = System.Text.Encoding.UTF8.GetByteCount(text);
        if (bytes > MaxSnapshotBytes)
        {
            notes.Add($"{which} omitted: {bytes} bytes, over {MaxSnapshotBytes}");
            return null;
        }
        return text;
    }

    private static string? MaskAddress(string? value) =>
        value is not null && (value.Contains('@', StringComparison.Ordinal) || value.Contains("%40", StringComparison.OrdinalIgnoreCase))
            ? "{email}" : value;

    private static string? Truncate(string? value, int max) => value is null || value.Length <= max ? value : value[..max];

    [LoggerMessage(LogLevel.Error, "Operation log: the record of {Action} ({Method} {Path} -> {StatusCode}) could not be written")]
    private static partial void LogWriteFailed(ILogger logger, string action, string method, string path, int statusCode, Exception ex);
}
