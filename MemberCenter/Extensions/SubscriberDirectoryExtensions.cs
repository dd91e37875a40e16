using MemberCenter.Features.Subscribers;
using Newsletter.ServiceDefaults.Background;

namespace MemberCenter.Extensions;

public static class SubscriberDirectoryExtensions
{
    /// <summary>The console's subscriber routes: search and detail, CSV import (staged, applied in the background) and export.</summary>
    public static WebApplicationBuilder AddSubscriberDirectory(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ImportOptions>().BindConfiguration(ImportOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddScoped<SubscriberDirectory>();
        services.AddScoped<SubscriberImportService>();
        services.AddSingleton<WakeSignal<SubscriberImportProcessor>>();
        services.AddHostedService<SubscriberImportProcessor>();
        return builder;
    }
}
