namespace Newsletter.TestSupport;

/// <summary>Waiting for a condition that nothing signals (a browser page's address, rows a background loop writes).</summary>
public static class Poll
{
    /// <summary>Checks <paramref name="done"/> every 50 ms until it holds; after <paramref name="timeout"/>, a
    /// <see cref="TimeoutException"/> with <paramref name="failure"/>'s text.</summary>
    public static Task UntilAsync(Func<bool> done, TimeSpan timeout, Func<string> failure) =>
        UntilAsync(() => Task.FromResult(done()), timeout, failure);

    /// <summary>Checks <paramref name="done"/> every <paramref name="interval"/> (50 ms by default) until it holds; after
    /// <paramref name="timeout"/>, a <see cref="TimeoutException"/> with <paramref name="failure"/>'s text.</summary>
    public static async Task UntilAsync(Func<Task<bool>> done, TimeSpan timeout, Func<string> failure, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await done())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(failure());
            }
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(50));
        }
    }
}
