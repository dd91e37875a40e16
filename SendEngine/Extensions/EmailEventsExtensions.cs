using System.Diagnostics.Metrics;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using OpenTelemetry.Metrics;
using Polly;
using Serilog.AspNetCore;
using Serilog.Events;
using SendEngine.Features.EmailEvents;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Metrics;
using SendEngine.Features.Tencent;
using SendEngine.Transports;

namespace SendEngine.Extensions;

/// <summary>Tencent SES (delivery adapter, per-tenant transport choice), the webhook and its processor, and /metrics.</summary>
public static class EmailEventsExtensions
{
    public static WebApplicationBuilder AddSendEngineEmailEvents(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<RecentDeliveries>();
        services.AddSingleton<SendEngineMetrics>();

        // Delivery adapters and the per-tenant choice.
        services.AddOptions<TencentSesOptions>().BindConfiguration(TencentSesOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<TransportRoutingOptions>().BindConfiguration(TransportRoutingOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TransportRoutingOptions>, TransportRoutingValidator>();
        services.AddSingleton<ITransport, TencentSesTransport>();
        services.AddSingleton<TransportResolver>();
        services.AddHttpClient(TencentSesTransport.HttpClientName)
            .AddResilienceHandler("tencent-ses", (pipeline, context) =>
            {
                var o = context.ServiceProvider.GetRequiredService<IOptions<TencentSesOptions>>().Value;
                if (o.HttpRetries > 0)
                {
                    // Only answers that mean "not processed" (429, 503) and connections that never carried the request: a
                    // SendEmail that timed out, or whose connection broke after it was written, may have been sent.
                    pipeline.AddRetry(new HttpRetryStrategyOptions
                    {
                        MaxRetryAttempts = o.HttpRetries,
                        BackoffType = DelayBackoffType.Exponential,
                        UseJitter = true,
                        Delay = o.HttpRetryBaseDelay,
                        ShouldHandle = args => ValueTask.FromResult(args.Outcome switch
                        {
                            { Exception: HttpRequestException e } => TencentSesTransport.NeverSent(e),
                            { Result: { } r } => (int)r.StatusCode is 429 or 503,
                            _ => false,
                        }),
                    });
                }
                pipeline.AddTimeout(o.Timeout);
            });

        // Webhook and processing.
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>();
        services.AddOptions<EmailEventOptions>().BindConfiguration(EmailEventOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<WebhookAuthenticator>();
        // Tencent's callback URL is configured by hand, so the webhook's query is worth seeing in the request log.
        services.AddSingleton<IRequestLogQuery, WebhookRequestLogQuery>();
        services.AddSingleton<WakeSignal<EmailEventProcessor>>();
        services.AddSingleton<EmailEventWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<EmailEventWriter>());
        services.AddHostedService<EmailEventProcessor>();
        services.AddSingleton<WakeSignal<MemberCenterReporter>>();
        services.AddHostedService<MemberCenterReporter>();

        services.AddOpenTelemetry().WithMetrics(m =>
        {
            // System.Runtime: the process's GC pauses, heap, thread pool queue and lock contention, for a latency tail.
            m.AddMeter(SendEngineMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "System.Runtime").AddPrometheusExporter();
            // OpenTelemetry selects meters by name across the whole process, so a second host in it (tests, or an
            // embedding app) would have its counters summed into ours and its gauges overwrite ours. Only this host's
            // own IMeterFactory counts.
            ((IDeferredMeterProviderBuilder)m).Configure((sp, provider) =>
            {
                var own = sp.GetRequiredService<IMeterFactory>();
                provider.AddView(instrument => instrument.Meter.Scope is IMeterFactory factory && !ReferenceEquals(factory, own)
                    ? MetricStreamConfiguration.Drop
                    : instrument.Name is "sendengine.email_events.processing_latency" or "sendengine.delivery.duration"
                        ? new ExplicitBucketHistogramConfiguration { Boundaries = SendEngineMetrics.LatencyBuckets }
                        : null);
            });
        });
        return builder;
    }

    public static WebApplication MapSendEngineEmailEvents(this WebApplication app)
    {
        app.MapTencentWebhook();
        app.MapEmailEventsApi();
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}
