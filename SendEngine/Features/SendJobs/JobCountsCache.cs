using Microsoft.Extensions.Caching.Memory;
using Newsletter.Contracts;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// Recipient counts by status and event counters for GET /api/send-jobs(/{id}). Each count scans the job's recipient
/// rows (≈ 50 ms at 100k recipients, see docs/performance.md) or its events, and tenants poll, so counts are kept for a
/// while that grows with what they cost: 50 times the time the count took, at most a minute (a count that takes 20 ms
/// is kept 1 s, one that takes 500 ms, a 1M job, 25 s), so counting never takes more than ~2 % of the time. A running
/// job's counts are kept at least a second; a finished job's are not kept when counting is that cheap (bounces and
/// opens still move them). Counts are served only while the job keeps the status they were taken under: those of a
/// scheduled or running job are never its final ones. The event processor drops a job's counts when it changed them
/// (<see cref="Invalidate"/>), so in this process a delivered/bounced event shows at once; other processes' copies age
/// out by their lifetime.
/// </summary>
public sealed class JobCountsCache(IMemoryCache cache, TimeProvider clock)
{
    public static readonly TimeSpan RunningJobLifetime = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromMinutes(1);
    private const int CostFactor = 50;
    private const string Counts = "send-job-counts", Events = "send-job-events", Invalidated = "send-job-invalidated";

    // The first count of each kind in a process also compiles its query and the code on its way (EF Core, the JIT),
    // a one-off cost that says nothing about what counting costs. Priced by it, a running job's first counts after a
    // start could be kept for many seconds while its progress stood still; it is kept as a cheap one.
    private int _countsCompiled, _eventsCompiled;

    public async Task<Dictionary<Guid, Dictionary<string, int>>> GetAsync(
        IReadOnlyCollection<SendJob> jobs, Func<Guid[], Task<Dictionary<Guid, Dictionary<string, int>>>> count)
    {
        var result = new Dictionary<Guid, Dictionary<string, int>>(jobs.Count);
        foreach (var job in jobs)
        {
            if (TryGet<Dictionary<string, int>>((Counts, job.Id), job, out var counts))
            {
                result[job.Id] = counts;
            }
        }
        var missing = jobs.Where(j => !result.ContainsKey(j.Id)).ToList();
        if (missing.Count > 0)
        {
            var started = clock.GetTimestamp();
            var fresh = await count([.. missing.Select(j => j.Id)]);
            var cost = Cost(ref _countsCompiled, started);
            foreach (var job in missing)
            {
                var counts = fresh.GetValueOrDefault(job.Id) ?? [];
                result[job.Id] = counts;
                Keep((Counts, job.Id), job, counts, started, cost);
            }
        }
        return result;
    }

    public async Task<SendJobEventCounts> GetEventsAsync(SendJob job, Func<Task<SendJobEventCounts>> count)
    {
        if (TryGet<SendJobEventCounts>((Events, job.Id), job, out var counts))
        {
            return counts;
        }
        var started = clock.GetTimestamp();
        counts = await count();
        Keep((Events, job.Id), job, counts, started, Cost(ref _eventsCompiled, started));
        return counts;
    }

    /// <summary>
    /// Forgets the jobs' counts; a count that was running meanwhile is not kept either (it may predate the change).
    /// </summary>
    public void Invalidate(IEnumerable<Guid> jobIds)
    {
        var now = clock.GetTimestamp();
        foreach (var id in jobIds)
        {
            cache.Remove((Counts, id));
            cache.Remove((Events, id));
            // Remembered a minute, longer than any count runs, so a count that started before it is recognised.
            cache.Set((Invalidated, id), now, MaxLifetime);
        }
    }

    private bool TryGet<T>((string, Guid) key, SendJob job, out T value)
    {
        if (cache.TryGetValue(key, out Entry<T>? entry) && entry is not null && entry.Status == job.Status)
        {
            value = entry.Value;
            return true;
        }
        value = default!;
        return false;
    }

    /// <summary>What a count that began at <paramref name="started"/> cost; nothing if it was its kind's first.</summary>
    private TimeSpan Cost(ref int compiled, long started) =>
        Interlocked.Exchange(ref compiled, 1) == 0 ? TimeSpan.Zero : clock.GetElapsedTime(started);

    private void Keep<T>((string, Guid) key, SendJob job, T value, long started, TimeSpan cost)
    {
        if (cache.TryGetValue((Invalidated, job.Id), out long invalidated) && invalidated > started)
        {
            return;
        }
        var lifetime = cost * CostFactor;
        if (IsRunning(job) && lifetime < RunningJobLifetime)
        {
            lifetime = RunningJobLifetime;
        }
        if (lifetime >= RunningJobLifetime)
        {
            cache.Set(key, new Entry<T>(job.Status, value), lifetime < MaxLifetime ? lifetime : MaxLifetime);
        }
    }

    private sealed record Entry<T>(string Status, T Value);

    private static bool IsRunning(SendJob job) => job.Status is SendJobStatuses.Queued or SendJobStatuses.Sending;
}
