using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;
using SendEngine.Features.Webhooks;

namespace SendEngine.Extensions;

/// <summary>Tenants' event webhooks: endpoints API, outbox publisher, dispatcher with its SSRF-guarded HTTP client.</summary>
public static class WebhooksExtensions
{
    public static WebApplicationBuilder AddSendEngineWebhooks(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<EventWebhookOptions>().BindConfiguration(EventWebhookOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventWebhookOptions>, EventWebhookOptionsValidator>();
        services.AddDataProtection();
        services.AddMemoryCache();
        services.AddSingleton<WebhookSecretProtector>();
        services.AddSingleton<WebhookTargetGuard>();
        services.AddSingleton<WebhookPublisher>();
        services.AddSingleton<WakeSignal<WebhookDispatcher>>();
        services.AddHostedService<WebhookDispatcher>();
        services.AddHttpClient(WebhookDispatcher.HttpClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp =>
            {
                var guard = sp.GetRequiredService<WebhookTargetGuard>();
                return new SocketsHttpHandler
                {
                    // Every connection goes through the guard: resolved, checked, connected to the checked address.
                    ConnectCallback = guard.ConnectAsync,
                    // A redirect or a proxy would take the request past the guard.
                    AllowAutoRedirect = false,
                    UseProxy = false,
                    UseCookies = false,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(1),
                    ConnectTimeout = TimeSpan.FromSeconds(10),
                };
            });

        // Admin routes use AuthExtensions.Admin (platform:admin tokens, which Member Center issues for this audience too).
        services.AddAuthorizationBuilder()
            .AddPolicy(WebhookEndpointsApi.TenantPolicy, p =>
            {
                p.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
                p.RequireAuthenticatedUser();
                p.RequireAssertion(ctx => ctx.User.HasScope(Scopes.Webhooks) && ctx.User.HasTenant());
            });
        return builder;
    }

    public static WebApplication MapSendEngineWebhooks(this WebApplication app)
    {
        app.MapWebhookEndpointsApi();
        return app;
    }
}
