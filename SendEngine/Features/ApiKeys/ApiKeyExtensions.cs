using Microsoft.AspNetCore.Authentication;

namespace SendEngine.Features.ApiKeys;

public static class ApiKeyExtensions
{
    /// <summary>The authorization policy of routes called with X-Pigeon-Api-Key.</summary>
    public const string Policy = "api_key";

    public static WebApplicationBuilder AddSendEngineApiKeys(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ApiKeyVerifier>();
        builder.Services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder().AddPolicy(Policy, p => p
            .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
            .RequireAuthenticatedUser());
        return builder;
    }

    /// <summary>
    /// Requires a valid X-Pigeon-Api-Key: the endpoint's user then carries tenant_id, application_id and api_key_id
    /// (read them with <c>user.TenantId()</c> and <c>user.ApplicationId()</c>); refusals are in the seed's error shape.
    /// </summary>
    public static TBuilder RequireApiKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.RequireAuthorization(Policy);
}
