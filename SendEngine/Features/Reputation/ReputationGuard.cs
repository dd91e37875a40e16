using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Background;

namespace SendEngine.Features.Reputation;

/// <summary>
/// The reputation guard's loop: every <see cref="ReputationOptions.EvaluationInterval"/> (or when this process applied
/// a bounce or complaint event) it evaluates every tenant's rates and the running jobs' first recipients
/// (<see cref="ReputationStore.EvaluateAsync"/>). Every process may run it: each transition is decided under the tenant row's lock.
/// </summary>
public sealed partial class ReputationGuard(
    ReputationStore store,
    WakeSignal<ReputationGuard> signal,
    IOptions<ReputationOptions> options,
    TimeProvider clock,
    ILogger<ReputationGuard> logger) : BatchLoop(signal, clock)
{
    protected override bool Enabled => options.Value.GuardEnabled;
    protected override TimeSpan PollInterval => options.Value.EvaluationInterval;
    // One evaluation covers everything: never "full".
    protected override int BatchSize => int.MaxValue;

    protected override async Task<int> RunBatchAsync(CancellationToken ct)
    {
        await store.EvaluateAsync(ct);
        // Events arriving in a burst wake the loop once per evaluation, not once each.
        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, options.Value.EvaluationInterval.TotalMilliseconds / 2)), Clock, ct);
        return 0;
    }

    protected override void OnBatchFailed(Exception ex) => LogFailed(logger, ex.Message);

    [LoggerMessage(LogLevel.Warning, "Reputation evaluation failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string error);
}
