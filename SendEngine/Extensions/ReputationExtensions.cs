using Newsletter.ServiceDefaults.Background;
using SendEngine.Features.Reputation;

namespace SendEngine.Extensions;

public static class ReputationExtensions
{
    /// <summary>The reputation guard (rates, thresholds, pauses) and the per-tenant sending limits (docs/deliverability.md).</summary>
    public static WebApplicationBuilder AddSendEngineReputation(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ReputationOptions>().BindConfiguration(ReputationOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.WarnBounceRate < o.PauseBounceRate && o.WarnComplaintRate < o.PauseComplaintRate,
                "Reputation: each warning threshold must be below its pause threshold.")
            .ValidateOnStart();
        services.AddOptions<SendingLimitOptions>().BindConfiguration(SendingLimitOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.MessagesPerHour is null || o.MessagesPerDay is null || o.MessagesPerHour <= o.MessagesPerDay,
                "SendingLimits: MessagesPerHour cannot exceed MessagesPerDay.")
            .ValidateOnStart();
        services.AddSingleton<ReputationMetrics>();
        services.AddSingleton<SendingLimits>();
        services.AddSingleton<ReputationStore>();
        services.AddSingleton<WakeSignal<ReputationGuard>>();
        services.AddHostedService<ReputationGuard>();
        return builder;
    }
}
