using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;
using SendEngine.Delivery;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.Retention;
using SendEngine.Features.SendJobs;
using SendEngine.Features.WarmUp;
using SendEngine.Transports;

namespace SendEngine.Extensions;

public static class SendEngineExtensions
{
    public static WebApplicationBuilder AddSendEngine(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<SendJobOptions>().BindConfiguration(SendJobOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<DeliveryOptions>().BindConfiguration(DeliveryOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<SmtpOptions>().BindConfiguration(SmtpOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<DkimOptions>().BindConfiguration(DkimOptions.Section)
            .Validate(o => o.Enabled || (o.Domain is null && o.Selector is null && o.PrivateKey is null && o.PrivateKeyPath is null),
                "Dkim needs Domain, Selector and PrivateKey or PrivateKeyPath together.")
            .ValidateOnStart();
        services.AddOptions<MemberCenterOptions>().BindConfiguration(MemberCenterOptions.Section)
            // Member Center is given the same credential as Bootstrap:SendEngineClientId/Secret; run.sh sets those.
            .PostConfigure<IConfiguration>((o, config) =>
            {
                o.ClientId ??= config["Bootstrap:SendEngineClientId"];
                o.ClientSecret ??= config["Bootstrap:SendEngineClientSecret"];
            })
            .ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton<ServiceTokenCache>();
        Newsletter.ServiceDefaults.Privacy.AddressHasher.AddAddressHasher(services);
        services.AddSingleton<SendEngine.Composition.ReturnPath>();
        services.AddHttpClient<MemberCenterClient>((sp, http) =>
        {
            http.BaseAddress = new Uri(sp.GetRequiredService<IOptions<MemberCenterOptions>>().Value.BaseUrl.TrimEnd('/') + "/");
            http.Timeout = TimeSpan.FromSeconds(60);
        });
        // Before /health/ready reports ready: what the first POST of a fresh process would otherwise wait for.
        services.AddSingleton<WarmUpState>();
        services.AddHttpClient(StartupWarmUp.HttpClientName);
        services.AddHostedService<StartupWarmUp>();
        services.AddHealthChecks().AddCheck<WarmUpHealthCheck>("warm_up");
        services.AddHttpClient(MemberCenterHealthCheck.HttpClientName);
        services.AddHealthChecks().AddCheck<MemberCenterHealthCheck>("member_center");

        services.AddSingleton<ITransport, SmtpTransport>();
        services.AddSingleton<RecipientStore>();
        services.AddTransient<RecipientSnapshot>();
        services.AddTransient<SendJobRunner>();
        services.AddTransient<SendJobWatchdog>();
        services.AddHostedService<SendJobWatchdogRegistration>();
        services.AddMemoryCache();
        services.AddSingleton<JobCountsCache>();
        services.AddSingleton<JobProgressHub>();
        services.AddSingleton<TestSendLimiter>();
        services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<RetentionSweeper>());
        return builder;
    }
}

/// <summary>Ready only when Member Center answers its liveness probe (recipients and the re-check come from it).</summary>
public sealed class MemberCenterHealthCheck(IHttpClientFactory factory, IOptions<MemberCenterOptions> options) : IHealthCheck
{
    public const string HttpClientName = "member-center-health";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            using var http = factory.CreateClient(HttpClientName);
            http.Timeout = TimeSpan.FromSeconds(5);
            using var response = await http.GetAsync(options.Value.BaseUrl.TrimEnd('/') + "/health/live", cancellationToken);
            return response.IsSuccessStatusCode
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy($"Member Center answered {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return HealthCheckResult.Unhealthy("Member Center is unreachable: " + ex.Message);
        }
    }
}
