namespace Newsletter.TestSupport;

/// <summary>Waiting for a condition that nothing signals (a browser page's address, a file appearing).</summary>
public static class Poll
{
    /// <summary>Checks <paramref name="done"/> every 50 ms until it holds; after <paramref name="timeout"/>, a
    /// <see cref="TimeoutException"/> with <paramref name="failure"/>'s text.</summary>
    public static async Task UntilAsync(Func<bool> done, TimeSpan timeout, Func<string> failure)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(failure());
            }
            await Task.Delay(50);
        }
    }
}
