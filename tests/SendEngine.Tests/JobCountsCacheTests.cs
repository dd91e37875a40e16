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
        var cache = new JobCountsCache(memory);
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
}
