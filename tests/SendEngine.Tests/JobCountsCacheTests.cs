using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using SendEngine.Features.SendJobs;

namespace SendEngine.Tests;

public sealed class JobCountsCacheTests
{
    private static SendJob Job(string status) => new()
    {
        Id = Guid.CreateVersion7(), TenantId = Guid.NewGuid(), ListId = Guid.NewGuid(), Name = "n", Subject = "s", Status = status,
    };

    [Fact]
    public async Task A_running_job_is_counted_once_per_lifetime_and_a_finished_one_every_time()
    {
        using var memory = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        // Counting costs nothing on this clock: a slow first call (JIT, GC) must not make the finished job's count kept.
        var cache = new JobCountsCache(memory, new SteppingClock());
        var running = Job(SendJobStatuses.Sending);
        var finished = Job(SendJobStatuses.Completed);
        var calls = new List<Guid[]>();
        Task<Dictionary<Guid, Dictionary<string, int>>> Count(Guid[] ids)
        {
            calls.Add(ids);
            return Task.FromResult(ids.ToDictionary(id => id, _ => new Dictionary<string, int> { [RecipientStatuses.Sent] = calls.Count }));
        }

        var first = await cache.GetAsync([running, finished], Count);
        var second = await cache.GetAsync([running, finished], Count);

        Assert.Equal(2, calls.Count);
        Assert.Equal([running.Id, finished.Id], calls[0]);
        Assert.Equal([finished.Id], calls[1]);
        Assert.Equal(1, second[running.Id][RecipientStatuses.Sent]);
        Assert.Equal(2, second[finished.Id][RecipientStatuses.Sent]);
        Assert.Equal(1, first[finished.Id][RecipientStatuses.Sent]);
    }

    [Fact]
    public async Task Expensive_counts_are_kept_longer_even_for_finished_jobs_and_a_running_jobs_counts_end_with_it()
    {
        using var memory = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        var clock = new SteppingClock();
        var cache = new JobCountsCache(memory, clock);
        var job = Job(SendJobStatuses.Completed);
        var calls = 0;
        Task<Dictionary<Guid, Dictionary<string, int>>> Count(Guid[] ids)
        {
            calls++;
            clock.Advance(TimeSpan.FromMilliseconds(100)); // a count of a large job: kept 5 s
            return Task.FromResult(ids.ToDictionary(id => id, _ => new Dictionary<string, int> { [RecipientStatuses.Sent] = calls }));
        }
        await cache.GetAsync([Job(SendJobStatuses.Completed)], Count); // the process's first count (next test)
        calls = 0;

        await cache.GetAsync([job], Count);
        var again = await cache.GetAsync([job], Count);

        Assert.Equal(1, calls);
        Assert.Equal(1, again[job.Id][RecipientStatuses.Sent]);

        // Counts taken while a job ran are not its final counts.
        var running = Job(SendJobStatuses.Sending);
        await cache.GetAsync([running], Count);
        running.Status = SendJobStatuses.Completed;
        var final = await cache.GetAsync([running], Count);
        Assert.Equal(3, calls);
        Assert.Equal(3, final[running.Id][RecipientStatuses.Sent]);

        // Nor are those taken before it started (a job that ran within the lifetime of its scheduled-phase counts).
        var scheduled = Job(SendJobStatuses.Scheduled);
        await cache.GetAsync([scheduled], Count);
        scheduled.Status = SendJobStatuses.Completed;
        var completed = await cache.GetAsync([scheduled], Count);
        Assert.Equal(5, calls);
        Assert.Equal(5, completed[scheduled.Id][RecipientStatuses.Sent]);
    }

    [Fact]
    public async Task A_process_s_first_count_is_kept_as_a_cheap_one_whatever_it_took()
    {
        using var memory = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        var clock = new SteppingClock();
        var cache = new JobCountsCache(memory, clock);
        var finished = Job(SendJobStatuses.Completed);
        var calls = 0;
        Task<Dictionary<Guid, Dictionary<string, int>>> Count(Guid[] ids)
        {
            calls++;
            clock.Advance(TimeSpan.FromMilliseconds(400)); // kept 20 s, were it what counting costs
            return Task.FromResult(ids.ToDictionary(id => id, _ => new Dictionary<string, int> { [RecipientStatuses.Sent] = calls }));
        }

        // The first count (compiling the query) is priced as a cheap one: a finished job's is not kept (a running
        // job's, a second). The second is priced by what it took.
        await cache.GetAsync([finished], Count);
        Assert.Equal(2, (await cache.GetAsync([finished], Count))[finished.Id][RecipientStatuses.Sent]);
        Assert.Equal(2, (await cache.GetAsync([finished], Count))[finished.Id][RecipientStatuses.Sent]);
        Assert.Equal(2, calls);

        // Event counters alike.
        var events = 0;
        Task<SendJobEventCounts> CountEvents()
        {
            events++;
            clock.Advance(TimeSpan.FromMilliseconds(400));
            return Task.FromResult(new SendJobEventCounts(events, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        }
        await cache.GetEventsAsync(finished, CountEvents);
        Assert.Equal(2, (await cache.GetEventsAsync(finished, CountEvents)).Delivered);
        Assert.Equal(2, (await cache.GetEventsAsync(finished, CountEvents)).Delivered);
    }

    [Fact]
    public async Task Event_counters_follow_the_same_rule()
    {
        using var memory = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        var clock = new SteppingClock();
        var cache = new JobCountsCache(memory, clock);
        var cheap = Job(SendJobStatuses.Completed);
        var expensive = Job(SendJobStatuses.Completed);
        var calls = 0;
        Task<SendJobEventCounts> Count(TimeSpan cost)
        {
            calls++;
            clock.Advance(cost);
            return Task.FromResult(new SendJobEventCounts(calls, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        }

        await cache.GetEventsAsync(cheap, () => Count(TimeSpan.FromMilliseconds(1)));
        var cheapAgain = await cache.GetEventsAsync(cheap, () => Count(TimeSpan.FromMilliseconds(1)));
        await cache.GetEventsAsync(expensive, () => Count(TimeSpan.FromMilliseconds(200)));
        var expensiveAgain = await cache.GetEventsAsync(expensive, () => Count(TimeSpan.FromMilliseconds(200)));

        Assert.Equal(3, calls);
        Assert.Equal(2, cheapAgain.Delivered);
        Assert.Equal(3, expensiveAgain.Delivered);
    }

    [Fact]
    public async Task Invalidated_counts_are_taken_again_and_a_count_that_overlapped_the_invalidation_is_not_kept()
    {
        using var memory = new MemoryCache(Options.Create(new MemoryCacheOptions()));
        var clock = new SteppingClock();
        var cache = new JobCountsCache(memory, clock);
        var job = Job(SendJobStatuses.Completed);
        var calls = 0;
        Action? during = null;
        Task<Dictionary<Guid, Dictionary<string, int>>> Count(Guid[] ids)
        {
            calls++;
            clock.Advance(TimeSpan.FromMilliseconds(100)); // kept 5 s unless invalidated
            during?.Invoke();
            return Task.FromResult(ids.ToDictionary(id => id, _ => new Dictionary<string, int> { [RecipientStatuses.Sent] = calls }));
        }

        await cache.GetAsync([job], Count);
        cache.Invalidate([job.Id]);
        var after = await cache.GetAsync([job], Count);
        Assert.Equal(2, calls);
        Assert.Equal(2, after[job.Id][RecipientStatuses.Sent]);

        // An event processed while counting: what the count read may predate it, so the next read counts again.
        cache.Invalidate([job.Id]);
        during = () => cache.Invalidate([job.Id]);
        await cache.GetAsync([job], Count);
        during = null;
        var next = await cache.GetAsync([job], Count);
        Assert.Equal(4, calls);
        Assert.Equal(4, next[job.Id][RecipientStatuses.Sent]);
        Assert.Equal(4, (await cache.GetAsync([job], Count))[job.Id][RecipientStatuses.Sent]);

        // Event counters too.
        var events = 0;
        Task<SendJobEventCounts> CountEvents()
        {
            events++;
            clock.Advance(TimeSpan.FromMilliseconds(100));
            return Task.FromResult(new SendJobEventCounts(events, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        }
        await cache.GetEventsAsync(job, CountEvents);
        cache.Invalidate([job.Id]);
        Assert.Equal(2, (await cache.GetEventsAsync(job, CountEvents)).Delivered);
    }
}
