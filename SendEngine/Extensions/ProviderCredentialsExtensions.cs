using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;
using SendEngine.Data;
using SendEngine.Features.ProviderCredentials;

namespace SendEngine.Extensions;

/// <summary>Tenants' own SMTP relays and Tencent accounts: options, the secret protector and its key ring, live checks, the transport lookup, the API.</summary>
public static class ProviderCredentialsExtensions
{
    public static WebApplicationBuilder AddSendEngineProviderCredentials(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ProviderCredentialOptions>().BindConfiguration(ProviderCredentialOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<ProviderCredentialOptions>, ProviderCredentialOptionsValidator>();
        // One key ring for every Send Engine process, in its own database (table data_protection_keys, created by the
        // migrations DatabaseInitializer applies before Data Protection's hosted service reads it): the secrets of
        // provider credentials, and those of webhooks and bounce mailboxes stored without a password, decrypt on any replica.
        services.AddDataProtection()
            .SetApplicationName("newsletter-send-engine")
            .PersistKeysToDbContext<SendEngineDbContext>();
        services.AddSingleton<ProviderSecretProtector>();
        services.AddSingleton<ProviderNetwork>();
        services.AddSingleton<ProviderVerifier>();
        services.AddSingleton<TenantProviders>();
        // No retries: a check reports what one call got; ProviderVerifier bounds it with its own timeouts.
        services.AddHttpClient(ProviderVerifier.HttpClientName, http => http.Timeout = Timeout.InfiniteTimeSpan);
        services.AddAuthorizationBuilder()
            .AddPolicy(ProviderCredentialsApi.ReadPolicy, p =>
            {
                p.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
                p.RequireAuthenticatedUser();
                // Viewers (newsletter:send.read) see the credentials and their checks; changes need newsletter:webhooks.
                p.RequireAssertion(ctx => (ctx.User.HasScope(Scopes.SendRead) || ctx.User.HasScope(Scopes.Webhooks)) && ctx.User.HasTenant());
            });
        return builder;
    }

    public static WebApplication MapSendEngineProviderCredentials(this WebApplication app)
    {
        app.MapProviderCredentialsApi();
        return app;
    }
}
