using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Background;
using SendEngine.Features.BounceMailboxes;

namespace SendEngine.Extensions;

/// <summary>Bounce and feedback mailboxes over IMAP: options, the password protector, the readers' supervisor, the API.</summary>
public static class BounceMailboxesExtensions
{
    public static WebApplicationBuilder AddSendEngineBounceMailboxes(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<BounceMailboxOptions>().BindConfiguration(BounceMailboxOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<BounceMailboxOptions>, BounceMailboxOptionsValidator>();
        services.AddDataProtection();
        services.AddSingleton<BounceMailboxSecretProtector>();
        services.AddSingleton<BounceMessageHandler>();
        services.AddSingleton<WakeSignal<BounceMailboxSupervisor>>();
        services.AddHostedService<BounceMailboxSupervisor>();
        return builder;
    }

    public static WebApplication MapSendEngineBounceMailboxes(this WebApplication app)
    {
        app.MapBounceMailboxesApi();
        return app;
    }
}
