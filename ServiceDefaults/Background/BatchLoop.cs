using Microsoft.Extensions.Hosting;

namespace Newsletter.ServiceDefaults.Background;

/// <summary>
/// A background loop over a queue in the database: run one batch; while batches come back full there is a backlog, so
/// run the next at once; otherwise sleep until the <see cref="WakeSignal"/> or <see cref="PollInterval"/> (other
/// processes' rows and retries that came due are only found by polling). A failed batch is logged by the subclass and
/// followed by a growing delay the signal cannot cut short, so an outage (the database gone) never turns into a spin.
/// Subclasses claim their rows so that a batch that dies leaves them to be claimed again (SKIP LOCKED, a lease, or one
/// transaction); this class only decides when the next batch runs.
/// </summary>
public abstract class BatchLoop(WakeSignal? signal, TimeProvider clock) : BackgroundService
{
    /// <summary>The clock of the waits, for the subclass's own timestamps too (one clock per loop).</summary>
    protected TimeProvider Clock { get; } = clock;

    /// <summary>Read once at start: a disabled loop does nothing (e.g. a process that only stores events).</summary>
    protected virtual bool Enabled => true;

    /// <summary>The longest sleep between batches when no signal comes.</summary>
    protected abstract TimeSpan PollInterval { get; }

    /// <summary>A batch that handled this many rows (or more) was full: the next one runs at once.</summary>
    protected abstract int BatchSize { get; }

    /// <summary>
    /// Loops run side by side in this process, sharing the signal; a full batch wakes a sleeping one to share the
    /// backlog. Read once at start.
    /// </summary>
    protected virtual int Workers => 1;

    /// <summary>False: the first batch runs one poll interval after start (e.g. an hourly sweep need not run at boot).</summary>
    protected virtual bool RunAtStart => true;

    /// <summary>One batch; returns how many rows it handled (claimed), compared with <see cref="BatchSize"/>.</summary>
    protected abstract Task<int> RunBatchAsync(CancellationToken ct);

    /// <summary>Logs a failed batch (each loop keeps its own message); the loop then waits <see cref="FailureDelay"/>.</summary>
    protected abstract void OnBatchFailed(Exception ex);

    /// <summary>
    /// The wait after the <paramref name="consecutiveFailures"/>-th failed batch in a row: 1 s doubling up to the poll
    /// interval (at least 1 s), so a short blip is retried quickly and a long outage costs one try per poll interval.
    /// </summary>
    protected virtual TimeSpan FailureDelay(int consecutiveFailures)
    {
        var cap = Math.Max(PollInterval.TotalSeconds, 1);
        return TimeSpan.FromSeconds(Math.Min(Math.Pow(2, Math.Min(consecutiveFailures - 1, 30)), cap));
    }

    protected sealed override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!Enabled)
        {
            return Task.CompletedTask;
        }
        var workers = Math.Max(1, Workers);
        // Task.Run: each worker runs on the pool, not on the host's start-up path, and the workers do not share a thread.
        return Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(() => LoopAsync(workers, stoppingToken), CancellationToken.None)));
    }

    private async Task LoopAsync(int workers, CancellationToken stoppingToken)
    {
        var failures = 0;
        try
        {
            if (!RunAtStart)
            {
                await WaitForWorkAsync(stoppingToken);
            }
            while (!stoppingToken.IsCancellationRequested)
            {
                int handled;
                try
                {
                    handled = await RunBatchAsync(stoppingToken);
                    failures = 0;
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // Deadlock, lost connection, a bug: what the batch did not commit is claimed again later.
                    failures++;
                    OnBatchFailed(ex);
                    await Task.Delay(FailureDelay(failures), Clock, stoppingToken);
                    continue;
                }
                if (handled >= BatchSize)
                {
                    if (workers > 1)
                    {
                        signal?.Notify();
                    }
                    continue;
                }
                await WaitForWorkAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: what a cut-short batch left unfinished is claimed again after the restart.
        }
    }

    private Task WaitForWorkAsync(CancellationToken ct) =>
        signal is null ? Task.Delay(PollInterval, Clock, ct) : signal.WaitAsync(PollInterval, Clock, ct);
}
