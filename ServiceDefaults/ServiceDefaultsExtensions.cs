using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;

namespace Newsletter.ServiceDefaults;

/// <summary>What every service of the platform does the same way: logs, errors, JSON, health, Swagger.</summary>
public static class ServiceDefaultsExtensions
{
    public const string LiveTag = "live";

    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, string serviceTitle)
    {
        builder.Services.AddSerilog((services, log) => log
            // Framework request logs would repeat Serilog's one-line request log and print query strings (tokens).
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.EntityFrameworkCore", LogEventLevel.Warning)
            .MinimumLevel.Override("System.Net.Http.HttpClient", LogEventLevel.Warning)
            .ReadFrom.Configuration(builder.Configuration)
            .ReadFrom.Services(services)
            .Enrich.FromLogContext()
            .Enrich.With<RequestPathMasking>()
            .Enrich.WithProperty("Service", serviceTitle)
            .WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture),
            // The host's own logger, not the static Log.Logger: otherwise every host in a process logs through the last
            // one built, and disposing any of them silences the others (Log.CloseAndFlush). Tests run several hosts.
            preserveStaticLogger: true);

        builder.Services.ConfigureHttpJsonOptions(o => ConfigureJson(o.SerializerOptions));
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Extensions.Remove("traceId");
            ctx.ProblemDetails.Extensions["trace_id"] = ctx.HttpContext.TraceIdentifier;
            ProblemDefaults.Complete(ctx.ProblemDetails);
        });
        builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
        // Binding failures (unreadable JSON, a missing body) reach ProblemExceptionHandler, which says what was wrong;
        // otherwise outside Development they are a bare 400.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy(), tags: [LiveTag]);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddForwardedHeaders();
        builder.AddManagement();

        builder.Services.AddOpenApiDocument(serviceTitle);
        return builder;
    }

    public static void ConfigureJson(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        options.Converters.Add(new StorableStringConverter());
    }

    /// <summary>Error handling, request logs, health and Swagger; call before mapping the service's routes.</summary>
    public static WebApplication UseServiceDefaults(this WebApplication app)
    {
        // First, so logs, audit records and rate limits see the client's address rather than the proxy's.
        app.UseConfiguredForwardedHeaders();
        // Request logging wraps the exception handler so it logs the status the client got (a client that hangs up
        // mid-body is a 400, not the 500 an unhandled exception would be logged as); 5xx exceptions are logged by
        // ProblemExceptionHandler.
        var loggableQueries = app.Services.GetServices<IRequestLogQuery>().ToArray();
        app.UseSerilogRequestLogging(o =>
        {
            // This host's logger (see AddSerilog above).
            o.Logger = app.Services.GetRequiredService<Serilog.ILogger>();
            // Health probes every few seconds drown the log.
            o.GetLevel = (ctx, _, ex) => ex is not null || ctx.Response.StatusCode >= 500 ? LogEventLevel.Error
                : ctx.Request.Path.StartsWithSegments("/health") ? LogEventLevel.Verbose : LogEventLevel.Information;
            // Routes such as /api/subscribers/{email} name an address in the path: the log keeps the route, not the person.
            o.GetMessageTemplateProperties = (ctx, path, elapsed, status) =>
            [
                new LogEventProperty("RequestMethod", new ScalarValue(ctx.Request.Method)),
                // RequestPathMasking (an enricher on every event) replaces the addresses in it.
                new LogEventProperty("RequestPath", new ScalarValue(path
                    + loggableQueries.Select(q => q.LoggableQuery(ctx)).FirstOrDefault(q => q is not null))),
                new LogEventProperty("StatusCode", new ScalarValue(status)),
                new LogEventProperty("Elapsed", new ScalarValue(elapsed)),
            ];
        });
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use(RefuseUnstorablePathOrQuery);
        // Before Swagger, /metrics and /hangfire: none of them is served on the public listener without a credential.
        app.UseManagementGate();
        app.UseSwagger();
        app.UseSwaggerUI();

        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = r => r.Tags.Contains(LiveTag) });
        app.MapHealthChecks("/health/ready");
        return app;
    }

    // A NUL (or a lone surrogate) in a path segment or a query value would reach PostgreSQL, which refuses it in text,
    // through any route value, filter or cursor: refused here once for every route of both services. Kestrel itself
    // answers 400 to a NUL in the path before any middleware; the path check holds for any other server (IIS).
    private static Task RefuseUnstorablePathOrQuery(HttpContext context, Func<Task> next)
    {
        if (!StorableText.IsStorable(context.Request.PathBase.Value) || !StorableText.IsStorable(context.Request.Path.Value))
        {
            return BadRequestAsync(context, "The path contains a NUL character.");
        }
        var query = context.Request.QueryString.Value;
        if (query is null || !query.Contains("%00", StringComparison.Ordinal))
        {
            return next();
        }
        foreach (var (name, values) in context.Request.Query)
        {
            if (!StorableText.IsStorable(name) || values.Any(v => v is not null && !StorableText.IsStorable(v)))
            {
                return BadRequestAsync(context, $"The query parameter '{name}' contains a NUL character.");
            }
        }
        return next();
    }

    private static Task BadRequestAsync(HttpContext context, string detail)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        return context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = { Status = 400, Title = "Bad request", Detail = detail },
        }).AsTask();
    }

    /// <summary>
    /// ASP.NET Core puts the request path into the scope of every event logged during a request (RequestPath): mask the
    /// addresses there too, not only in the request log's own line.
    /// </summary>
    private sealed class RequestPathMasking : Serilog.Core.ILogEventEnricher
    {
        public void Enrich(LogEvent logEvent, Serilog.Core.ILogEventPropertyFactory propertyFactory)
        {
            if (logEvent.Properties.TryGetValue("RequestPath", out var value) && value is ScalarValue { Value: string path }
                && MaskAddresses(path) is var masked && !ReferenceEquals(masked, path))
            {
                logEvent.AddOrUpdateProperty(new LogEventProperty("RequestPath", new ScalarValue(masked)));
            }
        }
    }

    /// <summary>
    /// Path segments that hold an email address (raw or percent-encoded @) become <c>{email}</c>; a query string after
    /// the path (the webhook's, already redacted) is kept as it is.
    /// </summary>
    public static string MaskAddresses(string path)
    {
        var queryAt = path.IndexOf('?', StringComparison.Ordinal);
        var route = queryAt < 0 ? path : path[..queryAt];
        if (!route.Contains('@', StringComparison.Ordinal) && !route.Contains("%40", StringComparison.OrdinalIgnoreCase))
        {
            return path;
        }
        var segments = route.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            if (segments[i].Contains('@', StringComparison.Ordinal) || segments[i].Contains("%40", StringComparison.OrdinalIgnoreCase))
            {
                segments[i] = "{email}";
            }
        }
        return string.Join('/', segments) + (queryAt < 0 ? "" : path[queryAt..]);
    }
}
