namespace SendEngine.Delivery;

/// <summary>
/// A repeating signal between the parts of one delivery run: <see cref="Next"/> completes at the next <see cref="Fire"/>.
/// A waiter takes <see cref="Next"/> before it looks at the state the signal announces, so a change made after the look
/// always ends its wait. Unlike a <see cref="Newsletter.ServiceDefaults.Background.WakeSignal"/>, nothing is consumed:
/// it can be awaited together with other tasks (<see cref="Task.WhenAny(Task[])"/>) and a wait that lost loses nothing.
/// </summary>
internal sealed class Pulse
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    public void Fire() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
