using Microsoft.AspNetCore.Authentication;
using Microsoft.OpenApi;
using SendEngine.Features.ApiKeys;
using SendEngine.Features.SenderDomains;

namespace SendEngine.Extensions;

/// <summary>What senders are checked against: X-Pigeon-Api-Key and the tenant's sender domains (with their DKIM keys and DNS checks).</summary>
public static class TransactionalAccessExtensions
{
    public static WebApplicationBuilder AddSendEngineApiKeys(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ApiKeyVerifier>();
        builder.Services.AddSingleton<ApiKeyHandlerLoggers>();
        builder.Services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder().AddPolicy(Features.ApiKeys.ApiKeyExtensions.Policy, p => p
            .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
            .RequireAuthenticatedUser());
        builder.Services.ConfigureSwaggerGen(c =>
        {
            c.AddSecurityDefinition(ApiKeyRequirementFilter.SchemeName, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyAuthenticationHandler.HeaderName,
                Description = "An API key of one of the tenant's applications (Member Center: /api/applications/{application_id}/keys).",
            });
            // After ServiceDefaults' bearer filter, so it replaces the bearer requirement on these routes.
            c.OperationFilter<ApiKeyRequirementFilter>();
        });
        return builder;
    }

    public static WebApplicationBuilder AddSenderDomains(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<SenderDomainOptions>().BindConfiguration(SenderDomainOptions.Section)
            // Unverified domains may send only where someone chose it, or in Development.
            .PostConfigure<IHostEnvironment>((o, env) => o.AllowUnverified ??= env.IsDevelopment())
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<SenderDomainOptions>, SenderDomainOptionsValidator>();
        builder.Services.AddScoped<SenderDomainStore>();
        builder.Services.AddSingleton<DkimKeyProtector>();
        builder.Services.AddSingleton<SenderDomainDns>();
        builder.Services.AddSingleton<SenderSigning>();
        builder.Services.AddTransient<SenderDomainRecheck>();
        builder.Services.AddHostedService<SenderDomainRecheckRegistration>();
        return builder;
    }
}
