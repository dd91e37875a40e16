using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Validation;
using SendEngine.Extensions;
using SendEngine.Features.MemberCenter;

namespace SendEngine.Features.WarmUp;

/// <summary>Whether <see cref="StartupWarmUp"/> has finished (successfully or not); <c>/health/ready</c> waits for it.</summary>
public sealed class WarmUpState
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsDone => _done.Task.IsCompleted;

    public Task Done => _done.Task;

    internal void MarkDone() => _done.TrySetResult();
}

/// <summary>Not ready until the warm-up is done, so a load balancer or a bench sends the first request to a warm process.</summary>
public sealed class WarmUpHealthCheck(WarmUpState state) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(state.IsDone ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("warming up"));
}

/// <summary>
/// What the first <c>POST /api/send-jobs</c> of a fresh process would otherwise do on its way to the handler, done once
/// at start, before <c>/health/ready</c> reports ready: the Member Center service token (its list check needs it; Member
/// Center checks the client secret with a deliberately slow hash), Member Center's discovery document and JWKS
/// (OpenIddict's configuration and <see cref="JwksRefresher"/>'s keys, both otherwise fetched by the first token to
/// arrive), and one request through this process's own listener with a well-formed but unsigned token, which runs
/// Kestrel, routing, authentication and the 401 problem response once (their code is compiled on first use). Nothing is
/// written. Each step's failure is only logged: the first real request does the step itself, as it would have anyway.
/// </summary>
public sealed partial class StartupWarmUp(
    IServiceScopeFactory scopes,
    JwksRefresher jwks,
    IOptionsMonitor<OpenIddictValidationOptions> validation,
    IServer server,
    IHostApplicationLifetime lifetime,
    IHttpClientFactory httpFactory,
    WarmUpState state,
    ILogger<StartupWarmUp> logger) : BackgroundService
{
    public const string HttpClientName = "warm-up";

    /// <summary>Readiness does not wait longer than this for a slow Member Center; what is not warm by then warms on first use.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var limited = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        limited.CancelAfter(Limit);
        var ct = limited.Token;
        try
        {
            var started = Environment.TickCount64;
            await Task.WhenAll(
                StepAsync("Member Center service token", async c =>
                {
                    await using var scope = scopes.CreateAsyncScope();
                    await scope.ServiceProvider.GetRequiredService<MemberCenterClient>().WarmUpAsync(c);
                }, ct),
                StepAsync("signing keys", async c => await jwks.KeysForAsync(null, c), ct),
                StepAsync("OpenIddict configuration", async c =>
                {
                    if (validation.CurrentValue.ConfigurationManager is { } manager)
                    {
                        await manager.GetConfigurationAsync(c);
                    }
                }, ct));
            await StepAsync("request pipeline", SelfRequestAsync, ct);
            LogDone(logger, Environment.TickCount64 - started);
        }
        finally
        {
            state.MarkDone();
        }
    }

    // Never throws: a failed or timed-out step is logged (a BackgroundService's exception would stop the host).
    private async Task StepAsync(string step, Func<CancellationToken, Task> action, CancellationToken ct)
    {
        try
        {
            await action(ct);
        }
        catch (Exception ex)
        {
            if (!ct.IsCancellationRequested || !IsStopping)
            {
                LogStepFailed(logger, step, ex.Message);
            }
        }
    }

    private bool IsStopping => lifetime.ApplicationStopping.IsCancellationRequested;

    private async Task SelfRequestAsync(CancellationToken ct)
    {
        // The listener's address is known once the server has started (none in tests' in-memory server).
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (ct.Register(() => started.TrySetCanceled(ct)))
        {
            await started.Task;
        }
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses
            .Select(LoopbackUri)
            .FirstOrDefault(u => u is not null);
        if (address is null)
        {
            return;
        }
        using var http = httpFactory.CreateClient(HttpClientName);
        http.Timeout = TimeSpan.FromSeconds(10);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(address, $"api/send-jobs/{Guid.Empty}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", UnsignedToken());
        using var response = await http.SendAsync(request, ct);
        // 401 is the expected answer: the token is not signed.
    }

    // http://+:7860, http://0.0.0.0:7860, http://[::]:7860 listen on every interface: call the loopback one.
    private static Uri? LoopbackUri(string address)
    {
        var normalized = address.Replace("://+", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://*", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal);
        return Uri.TryCreate(normalized.TrimEnd('/') + "/", UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp ? uri : null;
    }

    private static string UnsignedToken() => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        TokenType = "at+jwt",
        Claims = new Dictionary<string, object> { ["sub"] = "warm-up" },
    });

    [LoggerMessage(LogLevel.Information, "Warm-up done in {Elapsed} ms")]
    private static partial void LogDone(ILogger logger, long elapsed);

    [LoggerMessage(LogLevel.Information, "Warm-up step '{Step}' failed ({Error}); the first request that needs it does it")]
    private static partial void LogStepFailed(ILogger logger, string step, string error);
}
