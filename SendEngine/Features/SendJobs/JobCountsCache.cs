using Microsoft.Extensions.Caching.Memory;
using Newsletter.Contracts;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// Recipient counts by status for GET /api/send-jobs(/{id}). A running job's counts are kept for a second: each count
/// scans the job's recipient rows (≈ 40 ms at 50k recipients, see docs/performance.md), and tenants poll running jobs,
/// so without it the database work would grow with the poll rate. Finished jobs are counted fresh (bounces still move
/// their counts, and they are rarely polled).
/// </summary>
public sealed class JobCountsCache(IMemoryCache cache)
{
    public static readonly TimeSpan RunningJobLifetime = TimeSpan.FromSeconds(1);

    public async Task<Dictionary<Guid, Dictionary<string, int>>> GetAsync(
        IReadOnlyCollection<SendJob> jobs, Func<Guid[], Task<Dictionary<Guid, Dictionary<string, int>>>> count)
    {
        var result = new Dictionary<Guid, Dictionary<string, int>>(jobs.Count);
        foreach (var job in jobs)
        {
            if (IsRunning(job) && cache.TryGetValue(Key(job.Id), out Dictionary<string, int>? counts) && counts is not null)
            {
                result[job.Id] = counts;
            }
        }
        var missing = jobs.Where(j => !result.ContainsKey(j.Id)).ToList();
        if (missing.Count > 0)
        {
            var fresh = await count([.. missing.Select(j => j.Id)]);
            foreach (var job in missing)
            {
                var counts = fresh.GetValueOrDefault(job.Id) ?? [];
                result[job.Id] = counts;
                if (IsRunning(job))
                {
                    cache.Set(Key(job.Id), counts, RunningJobLifetime);
                }
            }
        }
        return result;
    }

    private static bool IsRunning(SendJob job) => job.Status is SendJobStatuses.Queued or SendJobStatuses.Sending;

    private static (string, Guid) Key(Guid jobId) => ("send-job-counts", jobId);
}
