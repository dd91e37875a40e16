using MemberCenter.Features.Privacy;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Privacy;

namespace MemberCenter.Extensions;

public static class PrivacyExtensions
{
    /// <summary>Export and erasure of an address, the keyed address hash, and the durable queue of calls to Send Engine.</summary>
    public static WebApplicationBuilder AddPrivacy(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        AddressHasher.AddAddressHasher(services);
        services.AddOptions<SendEngineOptions>().BindConfiguration(SendEngineOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<SendEngineToken>();
        services.AddHttpClient<SendEngineClient>((sp, http) =>
        {
            var o = sp.GetRequiredService<IOptions<SendEngineOptions>>().Value;
            http.BaseAddress = new Uri(o.BaseUrl.TrimEnd('/') + "/");
            http.Timeout = o.Timeout;
        });
        services.AddScoped<SubscriberDataService>();
        services.AddSingleton<WakeSignal<SendEngineRequestDispatcher>>();
        services.AddHostedService<SendEngineRequestDispatcher>();
        return builder;
    }
}
