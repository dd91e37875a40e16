using System.Text.Json;

namespace Newsletter.Contracts;

/// <summary>
/// One change made through a service's tenant or admin API. <c>Target</c> holds the route values (addresses masked);
/// <c>Before</c>/<c>After</c> are small snapshots the endpoint chose to record (secrets removed), or null; <c>Note</c>
/// says why one was left out.
/// </summary>
public sealed record OperationLogEntryResponse(
    long Id,
    DateTimeOffset OccurredAt,
    string? TenantId,
    string ActorKind,
    string? ActorId,
    string? ActorDisplay,
    string Action,
    IReadOnlyDictionary<string, string?>? Target,
    string Method,
    string Path,
    int StatusCode,
    string Outcome,
    string? ClientIp,
    string? UserAgent,
    JsonElement? Before,
    JsonElement? After,
    string? Note);

/// <summary>Newest first; pass <c>next_cursor</c> as <c>after</c> for the next page (null on the last one).</summary>
public sealed record OperationLogPage(IReadOnlyList<OperationLogEntryResponse> Items, string? NextCursor);

/// <summary>Who made a change.</summary>
public static class OperationLogActorKinds
{
    /// <summary>A signed-in person (console); actor_id is the person's user id (<c>sub</c>).</summary>
    public const string Person = "person";
    /// <summary>An OAuth client (client credentials); actor_id is its client_id.</summary>
    public const string Client = "client";
    /// <summary>An X-Pigeon-Api-Key; actor_id is the key's id.</summary>
    public const string ApiKey = "api_key";
}

public static class OperationLogOutcomes
{
    /// <summary>The change was made (a 2xx answer).</summary>
    public const string Succeeded = "succeeded";
    /// <summary>An authenticated caller was refused (403).</summary>
    public const string Denied = "denied";
}
