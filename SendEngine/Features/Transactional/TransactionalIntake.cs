using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.Transactional;

/// <summary>
/// Group commit of POST /api/v1/email: requests that arrive while a write is in flight are stored together, in one
/// transaction (<see cref="TransactionalTaskStore.CreateManyAsync"/>: one round trip, one statement, one commit, with the
/// pause flag and the suppressions decided in it),
/// instead of one transaction each. A request waits for nothing but the writes already running: with nobody else in
/// flight it is written alone at once, under load the groups grow by themselves. Each request is answered only after
/// the commit that holds it, so nothing acknowledged can be lost; a group that fails is written again one request at a
/// time, so that one bad request (or a deadlock between two groups on Idempotency-Keys) fails alone.
/// </summary>
public sealed partial class TransactionalIntake(TransactionalTaskStore store, IOptions<TransactionalOptions> options, ILogger<TransactionalIntake> logger)
    : BackgroundService
{
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleWriter = false, SingleReader = false });

    private sealed record Pending(NewRequest Request, TaskCompletionSource<StoredRequest> Stored);

    /// <summary>
    /// Stores the request and its tasks, committed when this returns, with their statuses as stored (a suppressed recipient
    /// rejected); or nothing, when the tenant already has a request with this Idempotency-Key or is paused.
    /// </summary>
    internal Task<StoredRequest> StoreAsync(TransactionalRequest r, IReadOnlyList<NewTask> tasks, DateTimeOffset dueAt, CancellationToken ct)
    {
        var pending = new Pending(new NewRequest(r, tasks, dueAt), new TaskCompletionSource<StoredRequest>(TaskCreationOptions.RunContinuationsAsynchronously));
        // Groups off, or the process is stopping (the writers are done): stored alone, as before.
        if (options.Value.IntakeGroupSize <= 1 || !_queue.Writer.TryWrite(pending))
        {
            return store.CreateAsync(r, tasks, dueAt, ct);
        }
        // A caller that gives up does not take the request out of its group: it may still be stored, as a request
        // cancelled during its own insert might be (the Idempotency-Key is the client's way to find out).
        return pending.Stored.Task.WaitAsync(ct);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, options.Value.IntakeWriters).Select(_ => Task.Run(WriteLoopAsync, CancellationToken.None)));

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // The writers finish what is queued (each caller is waiting for its commit), then stop.
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    private async Task WriteLoopAsync()
    {
        var max = options.Value.IntakeGroupSize;
        var group = new List<Pending>(max);
        // Not cancelled by the stopping token: queued requests are written before the loop ends (StopAsync completes the queue).
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None))
        {
            group.Clear();
            while (group.Count < max && _queue.Reader.TryRead(out var p))
            {
                group.Add(p);
            }
            if (group.Count > 0)
            {
                await WriteAsync(group);
            }
        }
    }

    private async Task WriteAsync(List<Pending> group)
    {
        try
        {
            var stored = await store.CreateManyAsync([.. group.Select(p => p.Request)], CancellationToken.None);
            foreach (var p in group)
            {
                p.Stored.TrySetResult(stored[p.Request.Request.Id]);
            }
            return;
        }
        catch (Exception ex) when (group.Count > 1)
        {
            LogGroupFailed(logger, group.Count, ex.GetType().Name, ex.Message);
        }
        catch (Exception ex)
        {
            group[0].Stored.TrySetException(ex);
            return;
        }
        // Nothing of the group was committed (one transaction), or, if the connection broke during the commit, all of it
        // was: then each request's own insert conflicts on its primary key and fails (a 500 to a request that was stored,
        // as a broken commit of a request alone gives), never a second copy.
        foreach (var p in group)
        {
            try
            {
                p.Stored.TrySetResult(await store.CreateAsync(p.Request.Request, p.Request.Tasks, p.Request.DueAt, CancellationToken.None));
            }
            catch (Exception ex)
            {
                p.Stored.TrySetException(ex);
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "Transactional intake: a group of {Count} requests failed ({ErrorType}: {Error}); storing them one by one")]
    private static partial void LogGroupFailed(ILogger logger, int count, string errorType, string error);
}
