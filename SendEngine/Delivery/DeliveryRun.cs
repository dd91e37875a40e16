namespace SendEngine.Delivery;

/// <summary>
/// One runner's delivery of one job, shared by its claimer, workers and housekeeping: the stop signal, what was done,
/// and why the run ended early (a pause asked for by the first part that met an outage, or a worker's own failure).
/// </summary>
/// <param name="firstAttempt">Called once, when the run's first message has been handed to the transport.</param>
/// <param name="timeline">The run's start, timed when this run took the job's first snapshot page.</param>
internal sealed class DeliveryRun(DeliveryJob job, Guid runnerId, CancellationToken shutdown, Action? firstAttempt = null, StartTimeline? timeline = null) : IDisposable
{
    public StartTimeline? Timeline { get; } = timeline;

    private readonly Lock _gate = new();
    private int _sent, _failed, _unknown, _attempted;

    public DeliveryJob Job { get; } = job;

    public Guid RunnerId { get; } = runnerId;

    /// <summary>The run's reservations in its tenant's sending-limit windows (empty for a tenant without limits).</summary>
    public Features.Reputation.LimitReservations Reservations { get; } = new();

    /// <summary>Cancelled on shutdown, cancellation of the job, a pause or a worker failure: workers finish the message in hand.</summary>
    public CancellationTokenSource Stop { get; } = CancellationTokenSource.CreateLinkedTokenSource(shutdown);

    public int Sent => Volatile.Read(ref _sent);

    private long _openFrom;

    /// <summary>
    /// The job's rows below this id were all closed when the claimer last looked (RecipientStore.FirstOpenWorkAsync):
    /// the run's walks of the job's rows for open ones (sweep, lease recovery and renewal) start here. Written by the
    /// claimer alone, with what FirstOpenWorkAsync found from the value before, so it only moves up.
    /// </summary>
    public long OpenFrom
    {
        get => Volatile.Read(ref _openFrom);
        set => Volatile.Write(ref _openFrom, value);
    }

    /// <summary>The job's rows below this id have had their refused mailboxes turned into suppressions
    /// (<see cref="DeliveryHousekeeping"/>, which alone writes it; the runner reads it once housekeeping has ended).</summary>
    public long RefusedCheckedTo { get; set; }

    public int Failed => Volatile.Read(ref _failed);

    public int Unknown => Volatile.Read(ref _unknown);

    /// <summary>Set when a dependency failed: the job pauses (until a retry time, or for an operator).</summary>
    public (string Reason, bool NeedsOperator)? PauseRequest { get; private set; }

    /// <summary>Set when our own code failed in a worker (a database error, a bug).</summary>
    public Exception? WorkerError { get; private set; }

    // Rows the claimer handed to the workers whose 'sending' mark has not been tried yet: still pending, so the claimer's
    // sweep must not read them again.
    private readonly HashSet<long> _held = [];

    /// <summary>The claimer hands <paramref name="ids"/> to the workers.</summary>
    public void Hold(IEnumerable<long> ids)
    {
        lock (_held)
        {
            _held.UnionWith(ids);
        }
    }

    /// <summary>A worker's mark of <paramref name="rows"/> was tried (taken or not): they are no longer this run's to hold.</summary>
    public void Release(List<Claimed> rows)
    {
        lock (_held)
        {
            foreach (var r in rows)
            {
                _held.Remove(r.Id);
            }
        }
    }

    private readonly Pulse _idleRecord = new();

    /// <summary>
    /// Completes when a worker that ran out of rows to send has next committed its results: the claimer, waiting for
    /// the job's last open rows to close, looks again then instead of a poll interval later (at the end of a 100k job
    /// that wait was 0.4-0.6 s, about 3 % of its time). Take it before looking at the open rows, so that a record
    /// committed after the look always wakes the wait.
    /// </summary>
    public Task NextIdleRecord => _idleRecord.Next;

    /// <summary>A worker with nothing left to send has committed its results.</summary>
    public void IdleRecorded() => _idleRecord.Fire();

    /// <summary>The rows held now (for the claimer's sweep).</summary>
    public long[] Held()
    {
        lock (_held)
        {
            return [.. _held];
        }
    }

    public void Count(string status)
    {
        if (Interlocked.Exchange(ref _attempted, 1) == 0)
        {
            firstAttempt?.Invoke();
        }
        switch (status)
        {
            case Newsletter.Contracts.RecipientStatuses.Sent:
                Interlocked.Increment(ref _sent);
                break;
            case Newsletter.Contracts.RecipientStatuses.Failed:
                Interlocked.Increment(ref _failed);
                break;
            case Newsletter.Contracts.RecipientStatuses.Unknown:
                Interlocked.Increment(ref _unknown);
                break;
        }
    }

    /// <summary>Stops the run so the job can pause; the first reason wins (the others are the same outage seen later).</summary>
    public void RequestPause(string reason, bool needsOperator)
    {
        lock (_gate)
        {
            PauseRequest ??= (reason, needsOperator);
        }
        Stop.Cancel();
    }

    public void Fail(Exception error)
    {
        lock (_gate)
        {
            WorkerError ??= error;
        }
        Stop.Cancel();
    }

    public void Dispose() => Stop.Dispose();
}
