using Microsoft.Extensions.Logging;
using Npgsql;

namespace Newsletter.ServiceDefaults.Background;

/// <summary>
/// A retention sweep on a timer (both services' <c>RetentionSweeper</c>): the first sweep one <see cref="Interval"/>
/// after start, then one interval after the previous one; a failed sweep is logged and tried again at the next interval.
/// </summary>
public abstract partial class RetentionLoop(TimeProvider clock, ILogger logger) : BatchLoop(signal: null, clock)
{
    /// <summary>The subclass's logger, for its own messages too.</summary>
    protected ILogger Logger { get; } = logger;

    /// <summary>How often the sweep runs.</summary>
    protected abstract TimeSpan Interval { get; }

    /// <summary>One whole sweep: everything due, in batches of its own.</summary>
    protected abstract Task RunSweepAsync(CancellationToken ct);

    // Nothing wakes a sweep early, and it need not run at boot.
    protected sealed override bool RunAtStart => false;
    protected sealed override TimeSpan PollInterval => Interval;

    // A sweep deletes everything due, so it never leaves a backlog to run again for at once.
    protected sealed override int BatchSize => 1;

    protected sealed override async Task<int> RunBatchAsync(CancellationToken ct)
    {
        await RunSweepAsync(ct);
        return 0;
    }

    // The next interval tries again; nothing is lost by a missed sweep.
    protected sealed override TimeSpan FailureDelay(int consecutiveFailures) => Interval;

    protected sealed override void OnBatchFailed(Exception ex) => LogSweepFailed(Logger, ex.Message);

    /// <summary>
    /// Runs <paramref name="sql"/> ($1 = <paramref name="before"/>, $2 = <paramref name="batchSize"/>, rows taken with
    /// SKIP LOCKED) until a statement affects fewer than <paramref name="batchSize"/> rows, so a large backlog never
    /// holds many locks or a long transaction. Returns the rows affected in all.
    /// </summary>
    protected static async Task<long> RepeatAsync(NpgsqlDataSource db, string sql, DateTimeOffset before, int batchSize, CancellationToken ct)
    {
        long total = 0;
        while (true)
        {
            await using var cmd = db.CreateCommand(sql);
            cmd.Parameters.Add(new NpgsqlParameter { Value = before });
            cmd.Parameters.Add(new NpgsqlParameter { Value = batchSize });
            var n = await cmd.ExecuteNonQueryAsync(ct);
            total += n;
            if (n < batchSize)
            {
                return total;
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "Retention sweep failed, retried at the next interval: {Error}")]
    private static partial void LogSweepFailed(ILogger logger, string error);
}
