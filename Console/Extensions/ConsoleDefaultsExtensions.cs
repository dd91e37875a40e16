using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Events;

namespace NewsletterConsole.Extensions;

/// <summary>Logs, options, health, static files and the security headers of every response.</summary>
public static class ConsoleDefaultsExtensions
{
    public static WebApplicationBuilder AddConsoleDefaults(this WebApplicationBuilder builder)
    {
        builder.Services.AddSerilog((services, log) => log
            // Framework request logs would repeat Serilog's request line and print query strings (codes, states).
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("System.Net.Http.HttpClient", LogEventLevel.Warning)
            .ReadFrom.Configuration(builder.Configuration)
            .ReadFrom.Services(services)
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Service", "Console")
            .WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture),
            // The host's own logger, not the static Log.Logger, which the last host built in a process would own.
            preserveStaticLogger: true);
        builder.Services.AddOptions<ConsoleOptions>().BindConfiguration(ConsoleOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ConsoleAuthOptions>().BindConfiguration(ConsoleAuthOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHealthChecks();
        builder.Services.AddOptions<ForwardedHeadersOptions>().BindConfiguration("ForwardedHeaders").Configure(o =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
        });
        return builder;
    }

    public static WebApplication UseConsoleDefaults(this WebApplication app)
    {
        // Only the proxies configured under ForwardedHeaders (KnownProxies) are believed: Secure cookies and redirect
        // URIs depend on the scheme they report.
        app.UseForwardedHeaders();
        app.UseSerilogRequestLogging(o => o.Logger = app.Services.GetRequiredService<Serilog.ILogger>());
        if (!app.Environment.IsDevelopment())
        {
            app.UseExceptionHandler("/StatusCode/500");
            app.UseHsts();
        }
        app.UseStatusCodePagesWithReExecute("/StatusCode/{0}");
        app.UseSecurityHeaders();
        app.UseStaticFiles();
        app.MapHealthChecks("/health/live");
        app.MapHealthChecks("/health/ready");
        return app;
    }

    /// <summary>
    /// A strict CSP: scripts and styles only from this origin (no inline script or style), forms post only here and
    /// to Member Center (sign-out and the tenant switch redirect there), no framing.
    /// </summary>
    private static void UseSecurityHeaders(this WebApplication app)
    {
        var issuer = new Uri(app.Services.GetRequiredService<IOptions<ConsoleAuthOptions>>().Value.Issuer);
        var memberCenterOrigin = issuer.GetLeftPart(UriPartial.Authority);
        var csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + $"form-action 'self' {memberCenterOrigin}; frame-ancestors 'none'; base-uri 'none'";
        app.Use((context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                headers.ContentSecurityPolicy = csp;
                headers.XContentTypeOptions = "nosniff";
                headers.XFrameOptions = "DENY";
                headers["Referrer-Policy"] = "same-origin";
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()";
                // Pages show tenant data: never from a shared cache.
                if (!context.Request.Path.StartsWithSegments("/console.css") && !context.Request.Path.StartsWithSegments("/console.js"))
                {
                    headers.CacheControl = "no-store";
                }
                return Task.CompletedTask;
            });
            return next(context);
        });
    }
}
