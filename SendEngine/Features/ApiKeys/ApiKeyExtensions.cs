
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
        builder.RequireAuthorization(Policy);
}
