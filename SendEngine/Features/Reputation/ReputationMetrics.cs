using System.Diagnostics.Metrics;
using SendEngine.Features.Metrics;

namespace SendEngine.Features.Reputation;

/// <summary>
/// The reputation guard's instruments on Send Engine's meter: counters of warnings and pauses (no tenant label: the
/// cardinality stays fixed however many tenants there are; the admin API names them) and a gauge of paused tenants.
/// </summary>
public sealed class ReputationMetrics
{
    private readonly Counter<long> _warnings;
    private readonly Counter<long> _pauses;
    private long _paused;

    public ReputationMetrics(IMeterFactory factory)
    {
        var meter = factory.Create(SendEngineMetrics.MeterName);
        _warnings = meter.CreateCounter<long>("sendengine.reputation.warnings",
            description: "Tenants that reached a reputation warning threshold, by kind (bounce, complaint).");
        _pauses = meter.CreateCounter<long>("sendengine.reputation.pauses",
            description: "Reputation pauses, by kind (bounce, complaint: a tenant's rate; list: a job's first recipients; operator).");
        meter.CreateObservableGauge("sendengine.reputation.paused_tenants", () => Volatile.Read(ref _paused),
            description: "Tenants whose bulk mail is paused (as of this process's last evaluation).");
    }

    public void Warning(string kind) => _warnings.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void Paused(string kind) => _pauses.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void PausedTenants(long count) => Volatile.Write(ref _paused, count);
}
