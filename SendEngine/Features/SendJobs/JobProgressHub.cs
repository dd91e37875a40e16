using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using SendEngine.Data;
using SendEngine.Delivery;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// The live progress of jobs for GET /api/send-jobs/{id}/progress: one poller per watched job (in this process) reads
/// the job and its counts every <see cref="SendJobOptions.ProgressInterval"/> and hands the same event to all its
/// watchers, so 100 watchers cost what one does. Counts come through <see cref="JobCountsCache"/>, so a huge job is not
/// counted more often than GET /api/send-jobs/{id} would. The poller stops when its last watcher leaves, or after the
/// event that shows the job final.
/// </summary>
public sealed partial class JobProgressHub(IServiceScopeFactory scopes, JobCountsCache countsCache, IOptions<SendJobOptions> options,
    TimeProvider clock, ILogger<JobProgressHub> logger) : IDisposable
{
    private readonly IServiceScopeFactory _scopes = scopes;
    private readonly JobCountsCache _countsCache = countsCache;
    private readonly SendJobOptions _options = options.Value;
    private readonly TimeProvider _clock = clock;
    private readonly ILogger _logger = logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, Poller> _pollers = [];
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Pollers running now (for tests and the status page).</summary>
    public int ActivePollers
    {
        get
        {
            lock (_lock)
            {
                return _pollers.Count;
            }
        }
    }

    /// <summary>Starts watching a job: the reader gets the latest event (older unread ones are dropped) and completes after the final one.</summary>
    public Watcher Watch(Guid jobId)
    {
        var channel = Channel.CreateBounded<SendJobProgressEvent>(new BoundedChannelOptions(1)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        lock (_lock)
        {
            if (!_pollers.TryGetValue(jobId, out var poller))
            {
                poller = new Poller(this, jobId);
                _pollers[jobId] = poller;
                poller.Add(channel.Writer);
                _ = Task.Run(poller.RunAsync, CancellationToken.None);
            }
            else
            {
                poller.Add(channel.Writer);
            }
            return new Watcher(this, poller, channel);
        }
    }

    private void Leave(Poller poller, ChannelWriter<SendJobProgressEvent> writer)
    {
        lock (_lock)
        {
            if (poller.Remove(writer) == 0 && _pollers.GetValueOrDefault(poller.JobId) == poller)
            {
                _pollers.Remove(poller.JobId);
                poller.Stop();
            }
        }
    }

    private void Finished(Poller poller)
    {
        lock (_lock)
        {
            if (_pollers.GetValueOrDefault(poller.JobId) == poller)
            {
                _pollers.Remove(poller.JobId);
            }
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    /// <summary>One reader of a job's progress; dispose to leave.</summary>
    public sealed class Watcher(JobProgressHub hub, Poller poller, Channel<SendJobProgressEvent> channel) : IDisposable
    {
        public ChannelReader<SendJobProgressEvent> Reader => channel.Reader;

        public void Dispose() => hub.Leave(poller, channel.Writer);
    }

    public sealed class Poller
    {
        private readonly JobProgressHub _hub;
        private readonly List<ChannelWriter<SendJobProgressEvent>> _writers = [];
        private readonly CancellationTokenSource _stop;
        // (time, sent) samples of the last few seconds, for sent per second over the last 5 s.
        private readonly Queue<(DateTimeOffset At, int Sent)> _samples = new();

        public Poller(JobProgressHub hub, Guid jobId)
        {
            _hub = hub;
            JobId = jobId;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(hub._stopping.Token);
        }

        public Guid JobId { get; }

        public void Add(ChannelWriter<SendJobProgressEvent> writer)
        {
            lock (_writers)
            {
                _writers.Add(writer);
            }
        }

        public int Remove(ChannelWriter<SendJobProgressEvent> writer)
        {
            lock (_writers)
            {
                _writers.Remove(writer);
                return _writers.Count;
            }
        }

        public void Stop() => _stop.Cancel();

        public async Task RunAsync()
        {
            var ct = _stop.Token;
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    SendJobProgressEvent? e;
                    try
                    {
                        e = await ReadAsync(ct);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // A failed read (database hiccup) skips one event; the watchers keep waiting.
                        LogPollFailed(_hub._logger, JobId, ex.Message);
                        e = null;
                    }
                    if (e is not null)
                    {
                        Publish(e);
                        if (e.Final)
                        {
                            return;
                        }
                    }
                    await Task.Delay(_hub._options.ProgressInterval, _hub._clock, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The last watcher left, or the host is stopping.
            }
            finally
            {
                _hub.Finished(this);
                lock (_writers)
                {
                    foreach (var w in _writers)
                    {
                        w.TryComplete();
                    }
                }
                _stop.Dispose();
            }
        }

        private void Publish(SendJobProgressEvent e)
        {
            lock (_writers)
            {
                foreach (var w in _writers)
                {
                    w.TryWrite(e);
                }
            }
        }

        private async Task<SendJobProgressEvent?> ReadAsync(CancellationToken ct)
        {
            await using var scope = _hub._scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SendEngineDbContext>();
            var job = await db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == JobId, ct);
            if (job is null)
            {
                return null;
            }
            var byStatus = (await _hub._countsCache.GetAsync([job], ids => SendJobsApi.CountsAsync(db, ids, ct)))[job.Id];
            var counts = SendJobsApi.ToResponse(job, byStatus).Counts;
            var now = _hub._clock.GetUtcNow();
            var sent = counts.Sent + counts.Bounced;
            _samples.Enqueue((now, sent));
            while (_samples.Count > 1 && now - _samples.Peek().At > TimeSpan.FromSeconds(5))
            {
                _samples.Dequeue();
            }
            var (firstAt, firstSent) = _samples.Peek();
            var seconds = (now - firstAt).TotalSeconds;
            var rate = seconds > 0 ? Math.Round(Math.Max(0, sent - firstSent) / seconds, 2) : 0;
            var final = job.Status is SendJobStatuses.Completed or SendJobStatuses.Cancelled or SendJobStatuses.Failed;
            var all = RecipientStatuses.All.ToDictionary(s => s, s => byStatus.GetValueOrDefault(s));
            return new SendJobProgressEvent(job.Id.ToString(), job.Status, counts, all, rate, counts.Remaining,
                counts.Failed + counts.Unknown + counts.Bounced, job.PausedReason, now, final);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Progress of send job {JobId}: reading the job failed ({Error}); next try in a moment")]
    private static partial void LogPollFailed(ILogger logger, Guid jobId, string error);
}
