
namespace SendEngine.Features.ApiKeys;

public static class ApiKeyExtensions
{
    /// <summary>The authorization policy of routes called with X-Pigeon-Api-Key.</summary>
    public const string Policy = "api_key";

    /// <summary>
    /// Requires a valid X-Pigeon-Api-Key: the endpoint's user then carries tenant_id, application_id and api_key_id
    /// (read them with <c>user.TenantId()</c> and <c>user.ApplicationId()</c>); refusals are in the seed's error shape.
    /// </summary>
    public static TBuilder RequireApiKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.RequireAuthorization(Policy).WithMetadata(ApiKeyOnly.Instance);
}

/// <summary>
/// Endpoint metadata of routes whose only authentication is the API key (<see cref="ApiKeyExtensions.RequireApiKey"/>):
/// their policy runs the key scheme and sets the user itself, so the default (bearer) scheme is not run for them
/// (<c>AuthExtensions.UseSendEngineAuthentication</c>).
/// </summary>
public sealed class ApiKeyOnly
{
    public static readonly ApiKeyOnly Instance = new();

    private ApiKeyOnly()
    {
    }
}
