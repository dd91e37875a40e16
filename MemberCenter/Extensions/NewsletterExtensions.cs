using MemberCenter.Features.ApiKeys;
using MemberCenter.Features.Admin;
using Microsoft.AspNetCore.DataProtection;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Retention;
using MemberCenter.Features.Subscriptions;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Mail;

namespace MemberCenter.Extensions;

public static class NewsletterExtensions
{
    public static WebApplicationBuilder AddNewsletter(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<NewsletterOptions>().BindConfiguration(NewsletterOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<PublicUrlOptions>().BindConfiguration(PublicUrlOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<SmtpOptions>().BindConfiguration(SmtpOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<OutboxOptions>().BindConfiguration(OutboxOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<DemoOptions>().BindConfiguration(DemoOptions.Section);
        services.AddOptions<RetentionOptions>().BindConfiguration(RetentionOptions.Section).ValidateDataAnnotations().ValidateOnStart();

        // Link-signing keys are encrypted with Newsletter:LinkKeyPassword or, without it, with Data Protection.
        services.AddDataProtection().SetApplicationName("newsletter-member-center");
        services.AddSingleton<LinkKeyProtector>();
        services.AddSingleton<LinkKeyRing>();
        services.AddHostedService(sp => sp.GetRequiredService<LinkKeyRing>());
        services.AddScoped<SubscriptionService>();
        services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddScoped<ApiKeyStore>();
        services.AddScoped<ConfirmationMailComposer>();
        // Reader pages and the confirmation mail are Razor components (RazorComponentResult, HtmlRenderer).
        services.AddRazorComponents();
        // Still encodes markup characters, but leaves Chinese, Japanese and Korean text readable (not &#x...; each).
        services.AddWebEncoders(o => o.TextEncoderSettings = new System.Text.Encodings.Web.TextEncoderSettings(System.Text.Unicode.UnicodeRanges.All));
        services.AddSingleton<ReaderText>();
        services.AddScoped<ReaderLooks>();
        services.AddScoped<PlatformSeeder>();
        services.AddSingleton<WakeSignal<OutboxDispatcher>>();
        services.AddHostedService<OutboxDispatcher>();
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<RetentionSweeper>());
        return builder;
    }
}
