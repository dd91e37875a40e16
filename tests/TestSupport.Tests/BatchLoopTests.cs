using System.Collections.Concurrent;
using System.Threading.Channels;
using Newsletter.ServiceDefaults.Background;

namespace Newsletter.TestSupport.Tests;

/// <summary>
/// The shared loop of the outbox, event processor, reporter and retention sweeper, with a scripted batch. Real time:
/// poll intervals of an hour mean "never" within a test, so a batch that happens anyway was caused by what the test
/// names (a full batch, the signal, the failure backoff). Waits for something to happen are generous; the short
/// "nothing happens" windows can only miss a bug on a slow machine, never fail a correct loop.
/// </summary>
public sealed class BatchLoopTests
{
    private static readonly TimeSpan Never = TimeSpan.FromHours(1);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task A_full_batch_runs_the_next_at_once_then_the_loop_sleeps_until_the_signal()
    {
        var signal = new WakeSignal();
        await using var loop = new ScriptedLoop(signal, Never, (call, _) => Task.FromResult(call switch
        {
            1 or 2 => ScriptedLoop.Size, // full: a backlog
            3 => 3,                      // partly full: the queue is drained
            _ => 0,
        }));
        await loop.StartAsync(TestContext.Current.CancellationToken);

        await loop.ExpectCallsAsync(1, 2, 3);
        await loop.AssertNoCallAsync(Quiet);

        signal.Notify();
        await loop.ExpectCallsAsync(4);
        await loop.AssertNoCallAsync(Quiet);
        Assert.Empty(loop.Failures);
    }

    [Fact]
    public async Task Without_a_signal_the_loop_polls()
    {
        await using var loop = new ScriptedLoop(signal: null, TimeSpan.FromMilliseconds(20), (_, _) => Task.FromResult(0));
        await loop.StartAsync(TestContext.Current.CancellationToken);

        await loop.ExpectCallsAsync(1, 2, 3);
    }

    [Fact]
    public async Task A_failed_batch_is_logged_and_retried_after_a_growing_backoff_that_resets_on_success()
    {
        var signal = new WakeSignal();
        await using var loop = new ScriptedLoop(signal, Never, (call, _) => call is 1 or 2 or 4
            ? throw new InvalidOperationException($"outage {call}")
            : Task.FromResult(0), failureDelay: TimeSpan.FromMilliseconds(20));
        await loop.StartAsync(TestContext.Current.CancellationToken);

        // Calls 2 and 3 come without a signal and with an hour's poll: the backoff brought them.
        await loop.ExpectCallsAsync(1, 2, 3);
        await loop.AssertNoCallAsync(Quiet);
        signal.Notify();
        await loop.ExpectCallsAsync(4, 5);

        Assert.Equal(new[] { "outage 1", "outage 2", "outage 4" }, loop.Failures.Select(e => e.Message));
        Assert.Equal(new[] { 1, 2, 1 }, loop.DelaysAsked);
    }

    [Fact]
    public async Task The_signal_does_not_cut_a_backoff_short_and_stopping_ends_it()
    {
        var signal = new WakeSignal();
        await using var loop = new ScriptedLoop(signal, TimeSpan.FromMilliseconds(20),
            (_, _) => throw new InvalidOperationException("database down"), failureDelay: Never);
        await loop.StartAsync(TestContext.Current.CancellationToken);

        await loop.ExpectCallsAsync(1);
        signal.Notify();
        await loop.AssertNoCallAsync(Quiet);

        await loop.StopAsync(TestContext.Current.CancellationToken);
        Assert.True(loop.ExecuteTask!.IsCompletedSuccessfully);
        Assert.Single(loop.Failures);
    }

    [Fact]
    public async Task Stopping_cancels_a_running_batch_without_counting_it_as_failed()
    {
        await using var loop = new ScriptedLoop(new WakeSignal(), Never, async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        });
        await loop.StartAsync(TestContext.Current.CancellationToken);
        await loop.ExpectCallsAsync(1);

        await loop.StopAsync(TestContext.Current.CancellationToken);
        Assert.True(loop.ExecuteTask!.IsCompletedSuccessfully);
        Assert.Empty(loop.Failures);
    }

    [Fact]
    public async Task A_disabled_loop_runs_no_batch()
    {
        await using var loop = new ScriptedLoop(new WakeSignal(), TimeSpan.FromMilliseconds(20), (_, _) => Task.FromResult(0), enabled: false);
        await loop.StartAsync(TestContext.Current.CancellationToken);

        await loop.AssertNoCallAsync(Quiet);
        Assert.True(loop.ExecuteTask!.IsCompletedSuccessfully);
    }

    [Fact]
    public void The_default_backoff_doubles_from_one_second_up_to_the_poll_interval()
    {
        var loop = new ScriptedLoop(null, TimeSpan.FromSeconds(5), (_, _) => Task.FromResult(0));
        Assert.Equal(new double[] { 1, 2, 4, 5, 5 }, new[] { 1, 2, 3, 4, 40 }.Select(n => loop.DefaultFailureDelay(n).TotalSeconds));

        var fast = new ScriptedLoop(null, TimeSpan.FromMilliseconds(100), (_, _) => Task.FromResult(0));
        Assert.Equal(TimeSpan.FromSeconds(1), fast.DefaultFailureDelay(3)); // a short poll interval still backs off 1 s
    }

    [Fact]
    public async Task The_signal_coalesces_notifications_and_times_out_on_its_clock()
    {
        var ct = TestContext.Current.CancellationToken;
        var signal = new WakeSignal();
        signal.Notify();
        signal.Notify();
        Assert.True(await signal.WaitAsync(Never, TimeProvider.System, ct));
        Assert.False(await signal.WaitAsync(TimeSpan.FromMilliseconds(20), TimeProvider.System, ct));

        using var cancelled = new CancellationTokenSource();
        var waiting = signal.WaitAsync(Never, TimeProvider.System, cancelled.Token);
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }

    /// <summary>A loop whose batch is a script of the call number; it records calls, failures and backoffs asked.</summary>
    private sealed class ScriptedLoop(
        WakeSignal? signal,
        TimeSpan pollInterval,
        Func<int, CancellationToken, Task<int>> batch,
        TimeSpan? failureDelay = null,
        bool enabled = true) : BatchLoop(signal, TimeProvider.System), IAsyncDisposable
    {
        public const int Size = 10;

        private readonly Channel<int> _calls = Channel.CreateUnbounded<int>();
        private int _count;

        public ConcurrentQueue<Exception> Failures { get; } = new();
        public List<int> DelaysAsked { get; } = [];

        protected override bool Enabled => enabled;
        protected override TimeSpan PollInterval => pollInterval;
        protected override int BatchSize => Size;

        protected override Task<int> RunBatchAsync(CancellationToken ct)
        {
            var call = Interlocked.Increment(ref _count);
            _calls.Writer.TryWrite(call);
            return batch(call, ct);
        }

        protected override void OnBatchFailed(Exception ex) => Failures.Enqueue(ex);

        protected override TimeSpan FailureDelay(int consecutiveFailures)
        {
            DelaysAsked.Add(consecutiveFailures); // one worker: no concurrent writers
            return failureDelay ?? base.FailureDelay(consecutiveFailures);
        }

        public TimeSpan DefaultFailureDelay(int consecutiveFailures) => base.FailureDelay(consecutiveFailures);

        /// <summary>The next batches are these calls, each within a generous timeout.</summary>
        public async Task ExpectCallsAsync(params int[] calls)
        {
            foreach (var expected in calls)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(30));
                Assert.Equal(expected, await _calls.Reader.ReadAsync(timeout.Token));
            }
        }

        public async Task AssertNoCallAsync(TimeSpan window)
        {
            await Task.Delay(window, TestContext.Current.CancellationToken);
            Assert.False(_calls.Reader.TryRead(out var call), $"unexpected batch {call}");
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync(CancellationToken.None);
            Dispose();
        }
    }
}
