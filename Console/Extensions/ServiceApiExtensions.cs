using System.Net;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using NewsletterConsole.Api;
using NewsletterConsole.Auth;

namespace NewsletterConsole.Extensions;

/// <summary>Typed clients of both services carrying the person's token, and what their errors become.</summary>
public static class ServiceApiExtensions
{
    public static WebApplicationBuilder AddServiceApis(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddHttpContextAccessor();
        services.AddTransient<BearerTokenHandler>();
        services.AddHttpClient<MemberCenterApi>(ConfigureBase(o => o.MemberCenterUrl))
            .AddHttpMessageHandler<BearerTokenHandler>()
            .AddStandardResilienceHandler(ConfigureResilience);
        services.AddHttpClient<SendEngineApi>(ConfigureBase(o => o.SendEngineUrl))
            .AddHttpMessageHandler<BearerTokenHandler>()
            .AddStandardResilienceHandler(ConfigureResilience);
        services.AddHttpClient<SendEngineStream>((sp, http) =>
            {
                http.BaseAddress = BaseUri(sp.GetRequiredService<IOptions<ConsoleOptions>>().Value.SendEngineUrl);
                http.Timeout = Timeout.InfiniteTimeSpan; // a progress stream lasts as long as the job
            })
            .AddHttpMessageHandler<BearerTokenHandler>();
        services.AddMemoryCache();
        services.AddScoped<Memberships>();
        services.AddHttpClient<HealthProbe>(http => http.Timeout = TimeSpan.FromSeconds(5));
        services.AddHttpClient<MemberCenterStream>((sp, http) =>
            {
                http.BaseAddress = BaseUri(sp.GetRequiredService<IOptions<ConsoleOptions>>().Value.MemberCenterUrl);
                http.Timeout = TimeSpan.FromMinutes(10); // exports and imports of large lists
            })
            .AddHttpMessageHandler<BearerTokenHandler>();
        return builder;
    }

    private static Action<IServiceProvider, HttpClient> ConfigureBase(Func<ConsoleOptions, string> url) => (sp, http) =>
    {
        http.BaseAddress = BaseUri(url(sp.GetRequiredService<IOptions<ConsoleOptions>>().Value));
        // The resilience pipeline owns the timeouts.
        http.Timeout = Timeout.InfiniteTimeSpan;
    };

    private static Uri BaseUri(string url) => new(url.TrimEnd('/') + "/");

    private static void ConfigureResilience(HttpStandardResilienceOptions o)
    {
        // A POST that timed out may have created the job or the key: only reads are retried.
        o.Retry.DisableForUnsafeHttpMethods();
        o.Retry.MaxRetryAttempts = 2;
    }

    /// <summary>
    /// 401 from a service (token revoked or expired) = sign in again; 403 and 404 = the console's own pages; anything
    /// else unexpected = 502. Pages catch the 4xx they can explain (validation, conflicts) themselves.
    /// </summary>
    public static WebApplication UseApiErrorPages(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (ApiException e) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                if (e.Status == HttpStatusCode.Unauthorized)
                {
                    await context.ChallengeAsync();
                    return;
                }
                context.Response.StatusCode = e.Status switch
                {
                    HttpStatusCode.Forbidden => StatusCodes.Status403Forbidden,
                    HttpStatusCode.NotFound => StatusCodes.Status404NotFound,
                    HttpStatusCode.BadRequest => StatusCodes.Status400BadRequest,
                    HttpStatusCode.Conflict => StatusCodes.Status409Conflict,
                    _ => StatusCodes.Status502BadGateway,
                };
            }
        });
        return app;
    }

    /// <summary>GET /lists/{listId}/export: Member Center's CSV export, streamed through with the person's token.</summary>
    public static WebApplication MapExportRelay(this WebApplication app)
    {
        app.MapGet("/lists/{listId}/export", async (string listId, HttpContext context, MemberCenterStream mc) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"api/lists/{Uri.EscapeDataString(listId)}/subscribers/export");
            await RelayDownloadAsync(mc, request, $"list-{listId}.csv", context);
        }).RequireAuthorization();
        return app;
    }

    /// <summary>GET /operation-log/export?service=: either service's operation log export, streamed through.</summary>
    public static WebApplication MapOperationLogExportRelay(this WebApplication app)
    {
        app.MapGet("/operation-log/export", async (HttpContext context, MemberCenterStream mc, SendEngineStream se) =>
        {
            var query = QueryString.Create(context.Request.Query.Where(q => q.Key != "service")
                .SelectMany(q => q.Value.Select(v => new KeyValuePair<string, string?>(q.Key, v))));
            ServiceApi api = context.Request.Query["service"] == "send-engine" ? se : mc;
            using var request = new HttpRequestMessage(HttpMethod.Get, "api/operation-log/export" + query);
            await RelayDownloadAsync(api, request, "operation-log.csv", context);
        }).RequireAuthorization();
        return app;
    }

    /// <summary>Streams a service's CSV/NDJSON download to the browser as an attachment, without buffering it.</summary>
    private static async Task RelayDownloadAsync(ServiceApi api, HttpRequestMessage request, string fallbackFileName, HttpContext context)
    {
        using var upstream = await api.SendStreamingAsync(request, context.RequestAborted);
        context.Response.ContentType = upstream.Content.Headers.ContentType?.ToString() ?? "text/csv; charset=utf-8";
        context.Response.Headers.ContentDisposition = upstream.Content.Headers.ContentDisposition?.ToString()
            ?? $"attachment; filename=\"{fallbackFileName}\"";
        await using var body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted);
        await body.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    /// <summary>
    /// GET /send-jobs/{id}/progress: Send Engine's server-sent events for one job, relayed with the person's token so
    /// the browser's EventSource never holds it.
    /// </summary>
    public static WebApplication MapProgressProxy(this WebApplication app)
    {
        app.MapGet("/send-jobs/{id}/progress", (string id, HttpContext context, SendEngineStream se) =>
            RelayEventsAsync(se, $"api/send-jobs/{Uri.EscapeDataString(id)}/progress", context)).RequireAuthorization();
        // The webhook gateway's live log (Pages/WebhookGateway), the same way.
        app.MapGet("/webhook-gateway/stream", (HttpContext context, SendEngineStream se) =>
            RelayEventsAsync(se, "api/webhook-gateway/events/stream", context)).RequireAuthorization();
        // The platform log's (Pages/WebhookGateway/Platform): operators only, as Send Engine would answer anyway.
        app.MapGet("/webhook-gateway/platform/stream", async (HttpContext context, SendEngineStream se) =>
        {
            if (!context.User.HasScope(Newsletter.Contracts.Scopes.PlatformAdmin))
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                return;
            }
            await RelayEventsAsync(se, "admin/webhook-gateway/events/stream", context);
        }).RequireAuthorization();
        return app;
    }

    /// <summary>Relays a Send Engine server-sent event stream to the browser as it comes.</summary>
    private static async Task RelayEventsAsync(SendEngineStream se, string path, HttpContext context)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var upstream = await se.SendStreamingAsync(request, context.RequestAborted);
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        await using var body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted);
        var buffer = new byte[8192];
        int read;
        try
        {
            while ((read = await body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The watcher closed the page.
        }
    }
}
