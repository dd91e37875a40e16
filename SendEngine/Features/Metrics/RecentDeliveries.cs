namespace SendEngine.Features.Metrics;

/// <summary>
/// This process's delivery attempts (bulk, transactional and test sends: every transport call the metrics count) in
/// one-minute slots over the last hour, for the operator status page: what /metrics' counters say, without Prometheus.
/// Per process, like the counters; several Send Engine processes each report their own.
/// </summary>
public sealed class RecentDeliveries(TimeProvider clock)
{
    private const int Slots = 60;
    private readonly Lock _lock = new();
    private readonly long[] _minute = new long[Slots];
    private readonly long[] _sent = new long[Slots];
    private readonly long[] _failed = new long[Slots];
    private readonly long[] _unknown = new long[Slots];

    /// <param name="result">The metric's result label: sent, unknown, or a failure (deferred, rejected, unavailable, misconfigured).</param>
    public void Record(string result)
    {
        var minute = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var i = (int)(minute % Slots);
        lock (_lock)
        {
            if (_minute[i] != minute)
            {
                _minute[i] = minute;
                _sent[i] = _failed[i] = _unknown[i] = 0;
            }
            switch (result)
            {
                case "sent": _sent[i]++; break;
                case "unknown": _unknown[i]++; break;
                default: _failed[i]++; break;
            }
        }
    }

    /// <summary>Sent, failed and unknown attempts in the last 60 minutes (the current minute included).</summary>
    public (long Sent, long Failed, long Unknown) LastHour()
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        long sent = 0, failed = 0, unknown = 0;
        lock (_lock)
        {
            for (var i = 0; i < Slots; i++)
            {
                if (now - _minute[i] < Slots)
                {
                    sent += _sent[i];
                    failed += _failed[i];
                    unknown += _unknown[i];
                }
            }
        }
        return (sent, failed, unknown);
    }
}
