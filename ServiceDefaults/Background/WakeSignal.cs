using System.Threading.Channels;

namespace Newsletter.ServiceDefaults.Background;

/// <summary>
/// Wakes a sleeping <see cref="BatchLoop"/> when this process wrote work for it, so the work starts at once instead of
/// at the next poll (work written by other processes is still found by polling). Notifications coalesce: one pending
/// wake-up is enough, however many writes happened, and <see cref="Notify"/> never blocks a request.
/// </summary>
public class WakeSignal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Notify() => _channel.Writer.TryWrite(true);

    /// <summary>
    /// Waits for a notification or until <paramref name="timeout"/> has passed on <paramref name="clock"/>; true when
    /// notified. Throws <see cref="OperationCanceledException"/> only when <paramref name="ct"/> is cancelled.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider clock, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (_channel.Reader.TryRead(out _))
        {
            return true;
        }
        using var timer = new CancellationTokenSource(timeout, clock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timer.Token);
        try
        {
            await _channel.Reader.ReadAsync(linked.Token);
            return true;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>
/// The signal of one loop, told apart from the others' by <typeparamref name="TLoop"/> (the loop it wakes), so each is a
/// plain singleton in DI: <c>services.AddSingleton&lt;WakeSignal&lt;OutboxDispatcher&gt;&gt;()</c>.
/// </summary>
public sealed class WakeSignal<TLoop> : WakeSignal
    where TLoop : class;
