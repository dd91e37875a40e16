using Newsletter.ServiceDefaults.Background;
using SendEngine.Features.Transactional;

namespace SendEngine.Extensions;

public static class TransactionalExtensions
{
    /// <summary>Seed 003's transactional mail: options, the task store, the API's group commit and the dispatchers.</summary>
    public static WebApplicationBuilder AddSendEngineTransactional(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<TransactionalOptions>().BindConfiguration(TransactionalOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<TransactionalJson>();
        services.AddSingleton<TransactionalTaskStore>();
        services.AddSingleton<TransactionalIntake>();
        services.AddHostedService(sp => sp.GetRequiredService<TransactionalIntake>());
        services.AddSingleton<WakeSignal<TransactionalDispatcher>>();
        services.AddHostedService<TransactionalDispatcher>();
        return builder;
    }
}
