using Microsoft.Extensions.Caching.Memory;
using Newsletter.Contracts;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// Recipient counts by status for GET /api/send-jobs(/{id}). Each count scans the job's recipient rows (≈ 50 ms at
/// 100k recipients, see docs/performance.md) and tenants poll, so counts are kept for a while that grows with what they
/// cost: 50 times the time the count took, at most a minute (a count that takes 20 ms is kept 1 s, one that takes
/// 500 ms, a 1M job, 25 s), so counting never takes more than ~2 % of the time. A running job's counts are kept at
/// least a second; a finished job's are not kept when counting is that cheap (bounces still move them).
/// </summary>
public sealed class JobCountsCache(IMemoryCache cache, TimeProvider clock)
{
    public static readonly TimeSpan RunningJobLifetime = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromMinutes(1);
    private const int CostFactor = 50;

    public async Task<Dictionary<Guid, Dictionary<string, int>>> GetAsync(
        IReadOnlyCollection<SendJob> jobs, Func<Guid[], Task<Dictionary<Guid, Dictionary<string, int>>>> count)
    {
        var result = new Dictionary<Guid, Dictionary<string, int>>(jobs.Count);
        foreach (var job in jobs)
        {
            // Counts kept while the job ran are not used once it has finished: its last counts must be its final ones.
            if (cache.TryGetValue(Key(job.Id), out Entry? entry) && entry is not null && entry.Running == IsRunning(job))
            {
                result[job.Id] = entry.Counts;
            }
        }
        var missing = jobs.Where(j => !result.ContainsKey(j.Id)).ToList();
        if (missing.Count > 0)
        {
            var started = clock.GetTimestamp();
            var fresh = await count([.. missing.Select(j => j.Id)]);
            var cost = clock.GetElapsedTime(started) * CostFactor;
            foreach (var job in missing)
            {
                var counts = fresh.GetValueOrDefault(job.Id) ?? [];
                result[job.Id] = counts;
                var lifetime = IsRunning(job) ? Max(cost, RunningJobLifetime) : cost;
                if (lifetime >= RunningJobLifetime)
                {
                    cache.Set(Key(job.Id), new Entry(IsRunning(job), counts), lifetime < MaxLifetime ? lifetime : MaxLifetime);
                }
            }
        }
        return result;
    }

    private sealed record Entry(bool Running, Dictionary<string, int> Counts);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static bool IsRunning(SendJob job) => job.Status is SendJobStatuses.Queued or SendJobStatuses.Sending;

    private static (string, Guid) Key(Guid jobId) => ("send-job-counts", jobId);
}
