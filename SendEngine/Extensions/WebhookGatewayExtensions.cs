using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Extensions;

/// <summary>The webhook gateway: the inbound log's reads, live view, trim and test console (the log itself is written by the webhook).</summary>
public static class WebhookGatewayExtensions
{
    public static WebApplicationBuilder AddSendEngineWebhookGateway(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<WebhookGatewayOptions>().BindConfiguration(WebhookGatewayOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<GatewayStore>();
        services.AddSingleton<WakeSignal<GatewayFeed>>();
        services.AddSingleton<GatewayFeed>();
        services.AddHostedService(sp => sp.GetRequiredService<GatewayFeed>());
        services.AddHostedService<GatewaySweeper>();
        services.AddSingleton<GatewayTestEvents>();
        // Only ever this Send Engine's own webhook: no redirects, a short timeout.
        services.AddHttpClient(GatewayTestEvents.HttpClientName, http => http.Timeout = TimeSpan.FromSeconds(10))
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false, UseCookies = false });

        // Reading the log is also a viewer's (newsletter:logs.read); changing anything takes newsletter:webhooks.
        services.AddAuthorizationBuilder()
            .AddPolicy(WebhookGatewayApi.ReadPolicy, p =>
            {
                p.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
                p.RequireAuthenticatedUser();
                p.RequireAssertion(ctx => (ctx.User.HasScope(Scopes.Webhooks) || ctx.User.HasScope(Scopes.LogsRead)) && ctx.User.HasTenant());
            });
        return builder;
    }

    public static WebApplication MapSendEngineWebhookGateway(this WebApplication app)
    {
        app.MapWebhookGatewayApi();
        return app;
    }
}
