using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;

namespace MemberCenter.Features.Retention;

public sealed class RetentionOptions
{
    public const string Section = "Retention";

    /// <summary>How often the sweep runs (the first run is one interval after start).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Confirm and unsubscribe tokens are deleted this long after they expired. Until then their links answer
    /// "expired"; afterwards "unknown" (both are clear pages, neither acts).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan ExpiredTokenGrace { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Outbox rows that are done (sent, or given up with their last error), and acknowledged export/erasure calls to
    /// Send Engine, are kept this long for operators.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "3650.00:00:00")]
    public TimeSpan CompletedOutboxRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long the change feed keeps a change: longer than any send job reads it.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan ChangeFeedRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Rows per DELETE statement, so a large backlog never holds many locks or a long transaction.</summary>
    /// <summary>How long the operation log keeps a row (Retention__OperationLogRetention); older rows are the only ones its
    /// append-only trigger lets this sweep delete.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan OperationLogRetention { get; set; } = TimeSpan.FromDays(400);

    [Range(100, 100_000)]
    public int BatchSize { get; set; } = 5_000;
}

/// <summary>
/// Deletes what has no further use: expired confirm/unsubscribe tokens, completed outbox rows, acknowledged calls to
/// Send Engine, change-feed entries older than any send job reads and operation-log rows past their retention. Consent records,
/// subscribers and subscriptions are never deleted here. Several replicas may sweep at once: each statement takes
/// rows with SKIP LOCKED, so they share the work instead of waiting on each other.
/// </summary>
public sealed partial class RetentionSweeper(
    NpgsqlDataSource db,
    IOptions<RetentionOptions> options,
    TimeProvider clock,
    ILogger<RetentionSweeper> logger) : RetentionLoop(clock, logger)
{
    public sealed record Result(long Tokens, long OutboxMessages, long Changes = 0, long SendEngineRequests = 0, long OperationLog = 0);

    protected override TimeSpan Interval => options.Value.Interval;

    protected override Task RunSweepAsync(CancellationToken ct) => SweepAsync(ct);

    public async Task<Result> SweepAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        var tokens = await DeleteInBatchesAsync("subscription_tokens", "expires_at < $1", now - o.ExpiredTokenGrace, ct);
        var outbox = await DeleteInBatchesAsync("outbox_messages", "completed_at < $1", now - o.CompletedOutboxRetention, ct);
        var changes = await DeleteInBatchesAsync("subscription_changes", "occurred_at < $1", now - o.ChangeFeedRetention, ct);
        // Export/erasure calls Send Engine acknowledged (they keep only the address hash by then); open ones stay.
        var requests = await DeleteInBatchesAsync("send_engine_requests", "completed_at < $1", now - o.CompletedOutboxRetention, ct);
        var operations = await OperationLogRetention.SweepAsync(db, now - o.OperationLogRetention, o.BatchSize, ct);
        if (tokens + outbox + changes + requests + operations > 0)
        {
            LogSwept(Logger, tokens, outbox, changes, requests, operations);
        }
        return new Result(tokens, outbox, changes, requests, operations);
    }

    private Task<long> DeleteInBatchesAsync(string table, string condition, DateTimeOffset before, CancellationToken ct) =>
        RepeatAsync(db, $"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {condition} LIMIT $2 FOR UPDATE SKIP LOCKED)",
            before, options.Value.BatchSize, ct);

    [LoggerMessage(LogLevel.Information, "Retention: deleted {Tokens} expired tokens, {OutboxMessages} completed outbox messages, {Changes} old change-feed entries {SendEngineRequests} acknowledged Send Engine requests and {OperationLog} old operation-log rows")]
    private static partial void LogSwept(ILogger logger, long tokens, long outboxMessages, long changes, long sendEngineRequests, long operationLog);
}
