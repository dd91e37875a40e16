using System.Text;

namespace SendEngine.Delivery;

/// <summary>
/// The steps of a job's way from its creation to its first message, timed once per run that takes the snapshot and
/// logged with the first message, so the latency from <c>POST /api/send-jobs</c> to the first message can be split
/// (Hangfire's pickup, the first page, the delivery's start, the first claim, the connection) without a tracer.
/// </summary>
internal sealed class StartTimeline(TimeProvider clock, DateTimeOffset createdAt, DateTimeOffset pickedUp)
{
    private readonly long _start = clock.GetTimestamp() - (long)((clock.GetUtcNow() - pickedUp).TotalSeconds * clock.TimestampFrequency);
    private readonly TimeSpan _pickup = pickedUp - createdAt;
    private readonly Lock _gate = new();
    private readonly List<(string Step, TimeSpan At)> _steps = [];

    // Set once the timeline is logged: the workers' later groups then cost a volatile read, not a lock.
    private volatile bool _described;

    /// <summary>Notes that <paramref name="step"/> is done now (only the first time it is named, and until it is logged).</summary>
    public void Mark(string step)
    {
        if (_described)
        {
            return;
        }
        var at = clock.GetElapsedTime(_start);
        lock (_gate)
        {
            if (!_steps.Exists(s => s.Step == step))
            {
                _steps.Add((step, at));
            }
        }
    }

    /// <summary>"created → picked up 123 ms; job loaded +5 ms; …", each step after the pickup as a time since it.</summary>
    public string Describe()
    {
        _described = true;
        var s = new StringBuilder().Append("picked up ").Append((int)_pickup.TotalMilliseconds).Append(" ms after creation");
        lock (_gate)
        {
            foreach (var (step, at) in _steps)
            {
                s.Append("; ").Append(step).Append(" +").Append((int)at.TotalMilliseconds).Append(" ms");
            }
        }
        return s.ToString();
    }
}
