using Newsletter.Contracts;
using Npgsql;
using SendEngine.Data;
using J = Newsletter.Contracts.SendJobStatuses;
using R = Newsletter.Contracts.RecipientStatuses;

namespace SendEngine.Delivery;

/// <summary>The part of a send job that delivery needs.</summary>
/// <param name="LinkKeyId">With <paramref name="LinksIssuedAt"/>, the Member Center link key the job's unsubscribe links are minted with.</param>
/// <param name="ChangesCursor">Member Center's change-feed position taken before the snapshot's first page (null for jobs snapshotted before the feed existed).</param>
public sealed record DeliveryJob(Guid Id, Guid TenantId, Guid ListId, string Status, string Subject, string? BodyHtml, string? BodyText,
    bool SnapshotDone, DateTimeOffset ScheduledAt, DateTimeOffset? ResumeAt, string? LinkKeyId, DateTimeOffset? LinksIssuedAt, string? ChangesCursor,
    string? FromEmail, string? FromName, DateTimeOffset CreatedAt);

/// <summary>
/// A recipient read for delivery, on its way to a worker (still <c>pending</c> until its worker's <c>sending</c> mark takes
/// it); <paramref name="UnsubscribeUrl"/> only for rows snapshotted before links were minted per message.
/// <paramref name="Attempts"/> as the mark found it (the mark returns it, so a stale read never adds an attempt).
/// </summary>
internal sealed record Claimed(long Id, Guid SubscriberId, string Email, string Preferences, string? UnsubscribeUrl, int Attempts, string? MessageId = null);

/// <summary>How one attempt is recorded: sent, back to pending with a backoff (deferred), failed or unknown.</summary>
internal readonly record struct AttemptResult(long Id, string Status, string? MessageId, string Detail, TimeSpan? RetryDelay);

/// <summary>What <see cref="RecipientStore.PauseAsync"/> did: nothing (the job was no longer running), or paused until a time or for an operator.</summary>
public readonly record struct PauseOutcome(bool Paused, DateTimeOffset? ResumeAt, string Reason);

/// <summary>
/// The one owner of the delivery state machine (docs/send-engine.md, "States"): every status change of
/// <c>send_jobs</c> and <c>send_job_recipients</c> is a statement of this class, written with the status constants of
/// <see cref="SendJobStatuses"/> and <see cref="RecipientStatuses"/>. Raw SQL, because these are the hot paths.
/// A job: scheduled → queued → sending ⇄ paused → completed | cancelled | failed (a failed or paused job can be resumed).
/// A recipient: pending → sending → sent | failed | unknown, pending → suppressed | cancelled, sending → pending
/// (deferred with backoff, or not attempted); then sent → delivered | bounced | failed from ESP events. Rows are read
/// for delivery without a write (<see cref="ReadDueAsync"/>): the conditional <c>sending</c> mark is the only gate, so
/// two runners that read the same row never both send it.
/// </summary>
public sealed partial class RecipientStore(NpgsqlDataSource db, TimeProvider clock, ILogger<RecipientStore> logger)
{
    /// <summary>The detail of a row found in <c>sending</c> whose runner died: the message may or may not have been sent.</summary>
    public const string RunnerStoppedOutcome = "outcome unknown: the runner stopped during the SMTP transaction; not retried to avoid a duplicate";

    private const string OpenJob = $"'{J.Queued}', '{J.Sending}'";

    // ---------------------------------------------------------------- jobs

    public async Task<DeliveryJob?> LoadJobAsync(Guid jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            SELECT id, tenant_id, list_id, status, subject, body_html, body_text, snapshot_completed_at IS NOT NULL, scheduled_at, resume_at,
                link_key_id, links_issued_at, changes_cursor, from_email, from_name, created_at
            FROM send_jobs WHERE id = $1
            """, jobId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
        {
            return null;
        }
        return new DeliveryJob(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetString(4),
            reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetBoolean(7),
            reader.GetFieldValue<DateTimeOffset>(8), reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
            reader.IsDBNull(10) ? null : reader.GetString(10), reader.IsDBNull(11) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(11)),
            reader.IsDBNull(12) ? null : reader.GetString(12), reader.IsDBNull(13) ? null : reader.GetString(13),
            reader.IsDBNull(14) ? null : reader.GetString(14), reader.GetFieldValue<DateTimeOffset>(15));
    }

    /// <summary>Records whether this run found the tenant's postal address (the job's warning); writes only on a change.</summary>
    public Task SetPostalAddressMissingAsync(Guid jobId, bool missing, CancellationToken ct) =>
        Sql.ExecuteAsync(db, "UPDATE send_jobs SET postal_address_missing = $2 WHERE id = $1 AND postal_address_missing <> $2", ct, jobId, missing);

    /// <summary>
    /// Records the link key the job's unsubscribe links are minted with, unless another runner recorded one first
    /// (<paramref name="replace"/>: the recorded key was retired). Returns the key id and issued_at now recorded.
    /// </summary>
    public async Task<(string KeyId, DateTimeOffset IssuedAt)> SetLinkKeyAsync(Guid jobId, string keyId, DateTimeOffset issuedAt, bool replace, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            UPDATE send_jobs SET link_key_id = CASE WHEN link_key_id IS NULL OR $4 THEN $2 ELSE link_key_id END,
                links_issued_at = CASE WHEN link_key_id IS NULL OR $4 THEN $3 ELSE links_issued_at END
            WHERE id = $1
            RETURNING link_key_id, links_issued_at
            """, jobId, keyId, issuedAt.ToUnixTimeSeconds(), replace);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return (reader.GetString(0), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(1)));
    }

    public Task<string?> JobStatusAsync(Guid jobId, CancellationToken ct) =>
        Sql.ScalarAsync<string>(db, "SELECT status FROM send_jobs WHERE id = $1", ct, jobId);

    /// <summary>scheduled → queued: the job's runner has started (the snapshot comes next).</summary>
    public Task MarkQueuedAsync(Guid jobId, CancellationToken ct) =>
        Sql.ExecuteAsync(db, $"UPDATE send_jobs SET status = '{J.Queued}' WHERE id = $1 AND status = '{J.Scheduled}'", ct, jobId);

    /// <summary>
    /// One snapshot page is in (run inside the page's transaction): the cursor advances, the first page moves the job
    /// queued → sending and records Member Center's change-feed position. $1 job, $2 now, $3 cursor (null at the end),
    /// $4 whether this was the last page, $5 the change-feed cursor the first page carried (else null).
    /// </summary>
    public const string AdvanceSnapshotSql = $"""
        UPDATE send_jobs SET snapshot_cursor = $3, snapshot_completed_at = CASE WHEN $4 THEN $2 END,
            changes_cursor = COALESCE(changes_cursor, $5),
            started_at = COALESCE(started_at, $2), status = CASE WHEN status = '{J.Queued}' THEN '{J.Sending}' ELSE status END
        WHERE id = $1
        """;

    /// <summary>Statuses in which the snapshot may go on copying pages.</summary>
    public static bool SnapshotMayRun(string status) => status is J.Queued or J.Sending;

    /// <summary>sending → completed once the snapshot is complete and no recipient is open.</summary>
    public async Task<bool> CompleteIfDoneAsync(Guid jobId, CancellationToken ct) =>
        await Sql.ExecuteAsync(db, $"""
            UPDATE send_jobs SET status = '{J.Completed}', finished_at = $2, outage_since = NULL
            WHERE id = $1 AND status = '{J.Sending}' AND snapshot_completed_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM send_job_recipients WHERE job_id = $1 AND is_open)
            """, ct, jobId, clock.GetUtcNow()) > 0;

    /// <summary>→ failed: only for what will never work (the list is gone) or a failure of our own code.</summary>
    public async Task<bool> FailAsync(Guid jobId, string error, CancellationToken ct)
    {
        var changed = await Sql.ExecuteAsync(db, $"""
            UPDATE send_jobs SET status = '{J.Failed}', last_error = $2, finished_at = $3, resume_at = NULL
            WHERE id = $1 AND status IN ('{J.Scheduled}', {OpenJob}, '{J.Paused}')
            """, ct, jobId, Truncate(error, 2000), clock.GetUtcNow());
        if (changed > 0)
        {
            LogFailed(logger, jobId, error);
        }
        return changed > 0;
    }

    /// <summary>
    /// queued | sending → paused. A dependency outage waits <paramref name="options"/>' backoff, which grows with the
    /// length of the outage (the time since <c>outage_since</c>, kept across resumes until something is delivered);
    /// after <see cref="SendJobOptions.GiveUpAfter"/> of outage, or when <paramref name="needsOperator"/> (a failure that
    /// does not heal by itself), the job waits for <c>POST /api/send-jobs/{id}/resume</c> (resume_at null).
    /// </summary>
    public async Task<PauseOutcome> PauseAsync(Guid jobId, string reason, bool needsOperator, SendJobOptions options, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        DateTimeOffset since;
        await using (var cmd = Sql.Command(conn, "SELECT outage_since FROM send_jobs WHERE id = $1", jobId))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            since = await reader.ReadAsync(ct) && !reader.IsDBNull(0) ? reader.GetFieldValue<DateTimeOffset>(0) : now;
        }
        var outage = now - since;
        DateTimeOffset? resumeAt = null;
        if (!needsOperator && outage >= options.GiveUpAfter)
        {
            reason = $"gave up after {options.GiveUpAfter.TotalHours:0.#} h of outage; resume when it is fixed. Last error: {reason}";
        }
        else if (!needsOperator)
        {
            var delay = outage < options.OutageRetryDelay ? options.OutageRetryDelay : outage > options.OutageRetryMaxDelay ? options.OutageRetryMaxDelay : outage;
            resumeAt = now + delay;
        }
        var changed = await Sql.ExecuteAsync(conn, $"""
            UPDATE send_jobs SET status = '{J.Paused}', paused_reason = $2, resume_at = $3, outage_since = COALESCE(outage_since, $4)
            WHERE id = $1 AND status IN ({OpenJob})
            """, ct, jobId, Truncate(reason, 2000), (object?)resumeAt ?? DBNull.Value, now);
        if (changed == 0)
        {
            return new PauseOutcome(false, null, reason);
        }
        LogPaused(logger, jobId, reason, resumeAt);
        return new PauseOutcome(true, resumeAt, reason);
    }

    /// <summary>
    /// paused (its time has come, or <paramref name="byOperator"/>) or failed (<paramref name="byOperator"/> only) →
    /// sending, or queued when no snapshot page was copied yet, or scheduled when it was paused before its time and
    /// that time is still ahead (its Hangfire schedule still stands). An operator's resume also starts a new outage budget.
    /// </summary>
    public async Task<bool> ResumeAsync(Guid jobId, bool byOperator, CancellationToken ct) =>
        await Sql.ExecuteAsync(db, $"""
            UPDATE send_jobs SET status = CASE WHEN started_at IS NOT NULL THEN '{J.Sending}'
                    WHEN scheduled_at > $3 THEN '{J.Scheduled}' ELSE '{J.Queued}' END,
                paused_reason = NULL, resume_at = NULL, finished_at = NULL,
                outage_since = CASE WHEN $2 THEN NULL ELSE outage_since END, last_error = CASE WHEN $2 THEN NULL ELSE last_error END
            WHERE id = $1 AND paused_by IS NULL AND (status = '{J.Paused}' AND ($2 OR resume_at <= $3) OR status = '{J.Failed}' AND $2)
            """, ct, jobId, byOperator, clock.GetUtcNow()) > 0;

    /// <summary>
    /// scheduled | queued | sending (or paused by an outage, which would resume by itself) → paused by the reputation
    /// guard (<paramref name="pausedBy"/>: tenant or list) for a platform operator, in the caller's transaction: the
    /// tenant's bulk jobs, or only <paramref name="jobId"/>. Returns the jobs paused.
    /// </summary>
    public static async Task<List<Guid>> PauseGuardedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, Guid? jobId, string pausedBy,
        string reason, CancellationToken ct)
    {
        var paused = new List<Guid>();
        await using var cmd = Sql.Command(conn, $"""
            UPDATE send_jobs SET status = '{J.Paused}', paused_reason = $3, paused_by = $4, resume_at = NULL
            WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2)
              AND (status IN ('{J.Scheduled}', {OpenJob}) OR (status = '{J.Paused}' AND paused_by IS NULL AND resume_at IS NOT NULL))
            RETURNING id
            """, tenantId, (object?)jobId ?? DBNull.Value, Truncate(reason, 2000), pausedBy);
        cmd.Transaction = tx;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            paused.Add(reader.GetGuid(0));
        }
        return paused;
    }

    /// <summary>
    /// The tenant's jobs paused by the reputation guard → running again (as <see cref="ResumeAsync"/> by an operator), in
    /// the caller's transaction; a job the purchased-list check paused is not checked again. Returns the jobs resumed
    /// with their new status (a runner is needed unless scheduled).
    /// </summary>
    public async Task<List<(Guid Id, string Status)>> ResumeGuardedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Guid tenantId, CancellationToken ct)
    {
        var resumed = new List<(Guid, string)>();
        await using var cmd = Sql.Command(conn, $"""
            UPDATE send_jobs SET status = CASE WHEN started_at IS NOT NULL THEN '{J.Sending}'
                    WHEN scheduled_at > $2 THEN '{J.Scheduled}' ELSE '{J.Queued}' END,
                paused_reason = NULL, paused_by = NULL, resume_at = NULL, outage_since = NULL,
                list_checked = list_checked OR paused_by = 'list'
            WHERE tenant_id = $1 AND status = '{J.Paused}' AND paused_by IS NOT NULL
            RETURNING id, status
            """, tenantId, clock.GetUtcNow());
        cmd.Transaction = tx;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            resumed.Add((reader.GetGuid(0), reader.GetString(1)));
        }
        return resumed;
    }

    /// <summary>The tenant's limit is reached: the job waits, still sending, until <paramref name="until"/> (null: no longer waiting).</summary>
    internal static Task SetThrottledAsync(NpgsqlConnection conn, Guid jobId, DateTimeOffset? until, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, "UPDATE send_jobs SET throttled_until = $2 WHERE id = $1 AND throttled_until IS DISTINCT FROM $2",
            ct, jobId, (object?)until ?? DBNull.Value);

    /// <summary>The reason a job paused by <see cref="PauseByOperatorAsync"/> shows.</summary>
    public const string PausedByOperator = "paused by an operator; resume to go on";

    /// <summary>
    /// scheduled | queued | sending → paused for an operator (resume_at null): runners see the status within a poll
    /// interval and stop claiming; messages already in flight finish and are recorded; rows read but not marked stay pending.
    /// False when the job is not the tenant's or not in one of those states.
    /// </summary>
    public async Task<bool> PauseByOperatorAsync(Guid tenantId, Guid jobId, CancellationToken ct)
    {
        var changed = await Sql.ExecuteAsync(db, $"""
            UPDATE send_jobs SET status = '{J.Paused}', paused_reason = $3, resume_at = NULL
            WHERE id = $1 AND tenant_id = $2 AND status IN ('{J.Scheduled}', {OpenJob})
            """, ct, jobId, tenantId, PausedByOperator);
        if (changed > 0)
        {
            LogPaused(logger, jobId, PausedByOperator, null);
        }
        return changed > 0;
    }

    /// <summary>
    /// A scheduled job starts now: its scheduled_at becomes now. Returns the Hangfire job that was waiting for the old
    /// time (the caller replaces it), or null when the job is not the tenant's or not scheduled.
    /// </summary>
    public async Task<(bool Triggered, string? OldHangfireJobId)> TriggerAsync(Guid tenantId, Guid jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, $"""
            UPDATE send_jobs SET scheduled_at = $3 WHERE id = $1 AND tenant_id = $2 AND status = '{J.Scheduled}'
            RETURNING hangfire_job_id
            """, jobId, tenantId, clock.GetUtcNow());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? (true, reader.IsDBNull(0) ? null : reader.GetString(0)) : (false, null);
    }

    /// <summary>What <see cref="RetryFailedAsync"/> did.</summary>
    public enum RetryOutcome { NotFound, WrongState, NothingToRetry, Retried }

    /// <summary>
    /// Every <c>failed</c> recipient of a completed, failed, sending or paused job → pending (attempts reset, so it gets
    /// the full retry budget again), and a completed or failed job → sending (queued if it never started): the same job
    /// runs again. Transient and permanent failures alike: the operator asked. Sent, unknown, bounced and suppressed rows
    /// are never touched; an address suppressed meanwhile (a hard bounce) is skipped by the claimer as usual. Returns
    /// how many rows and whether the job needs a runner (it was finished).
    /// </summary>
    public async Task<(RetryOutcome Outcome, string? Status, int Retried, bool NeedsRunner)> RetryFailedAsync(Guid tenantId, Guid jobId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var status = await Sql.ScalarAsync<string>(conn, "SELECT status FROM send_jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE", ct, jobId, tenantId);
        if (status is null)
        {
            return (RetryOutcome.NotFound, null, 0, false);
        }
        if (status is not (J.Completed or J.Failed or J.Sending or J.Paused))
        {
            return (RetryOutcome.WrongState, status, 0, false);
        }
        var retried = await Sql.ExecuteAsync(conn, $"""
            UPDATE send_job_recipients SET status = '{R.Pending}', attempts = 0, next_attempt_at = NULL, message_id = NULL,
                claimed_by = NULL, lease_until = NULL, updated_at = $2, detail = left('retry requested; last failure: ' || COALESCE(detail, ''), 1000)
            WHERE job_id = $1 AND status = '{R.Failed}'
            """, ct, jobId, now);
        if (retried == 0)
        {
            return (RetryOutcome.NothingToRetry, status, 0, false);
        }
        var reopened = await Sql.ExecuteAsync(conn, $"""
            UPDATE send_jobs SET status = CASE WHEN started_at IS NULL THEN '{J.Queued}' ELSE '{J.Sending}' END,
                finished_at = NULL, last_error = NULL, resume_at = NULL, paused_reason = NULL
            WHERE id = $1 AND status IN ('{J.Completed}', '{J.Failed}')
            """, ct, jobId);
        await tx.CommitAsync(ct);
        LogRetryFailed(logger, jobId, retried);
        // A running job gets a runner too: its own may be finishing (no open rows a moment ago); extra runners are harmless.
        return (RetryOutcome.Retried, status, retried, reopened > 0 || status == J.Sending);
    }

    /// <summary>What <see cref="ResolveUnknownAsync"/> did.</summary>
    public enum ResolveOutcome { NotFound, NotUnknown, Resolved }

    /// <summary>
    /// unknown → sent or failed by an operator's acknowledgement, recording who, when and the note. With
    /// <paramref name="ids"/> every one of them must be an unknown row of the job (else nothing changes and the ids
    /// that are not are returned); with null, all the job's unknown rows (at least one). A row resolved as sent keeps
    /// the time of its attempt as sent_at.
    /// </summary>
    public async Task<(ResolveOutcome Outcome, int Resolved, long[] NotUnknown)> ResolveUnknownAsync(
        Guid tenantId, Guid jobId, long[]? ids, string resolution, string resolvedBy, string? note, CancellationToken ct)
    {
        if (resolution is not (R.Sent or R.Failed))
        {
            throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "sent or failed");
        }
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        if (await Sql.ScalarAsync<string>(conn, "SELECT status FROM send_jobs WHERE id = $1 AND tenant_id = $2 FOR SHARE", ct, jobId, tenantId) is null)
        {
            return (ResolveOutcome.NotFound, 0, []);
        }
        var resolved = new List<long>();
        await using (var cmd = Sql.Command(conn, $"""
            UPDATE send_job_recipients SET status = $3, resolved_by = $4, resolved_at = $5, resolution_note = $6, updated_at = $5,
                sent_at = CASE WHEN $3 = '{R.Sent}' THEN COALESCE(sent_at, updated_at) ELSE sent_at END
            WHERE job_id = $1 AND status = '{R.Unknown}' AND ($2::bigint[] IS NULL OR id = ANY($2))
            RETURNING id
            """, jobId, (object?)ids ?? DBNull.Value, resolution, Truncate(resolvedBy, 200), now, note is null ? DBNull.Value : Truncate(note, 500)))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                resolved.Add(reader.GetInt64(0));
            }
        }
        if (ids is not null ? resolved.Count < ids.Distinct().Count() : resolved.Count == 0)
        {
            await tx.RollbackAsync(ct);
            return (ResolveOutcome.NotUnknown, 0, ids is null ? [] : [.. ids.Except(resolved)]);
        }
        await tx.CommitAsync(ct);
        LogResolved(logger, jobId, resolved.Count, resolution, resolvedBy);
        return (ResolveOutcome.Resolved, resolved.Count, []);
    }

    /// <summary>Something was delivered: the outage (if any) is over.</summary>
    public Task EndOutageAsync(Guid jobId, CancellationToken ct) =>
        Sql.ExecuteAsync(db, "UPDATE send_jobs SET outage_since = NULL WHERE id = $1 AND outage_since IS NOT NULL", ct, jobId);

    /// <summary>
    /// scheduled | queued | sending | paused → cancelled, and its pending rows with it (runners notice the status and
    /// stop; rows they read but had not marked are cancelled here). False when the job is not the tenant's or already finished.
    /// </summary>
    public async Task<bool> CancelAsync(Guid tenantId, Guid jobId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var changed = await Sql.ExecuteAsync(conn, $"""
            UPDATE send_jobs SET status = '{J.Cancelled}', cancelled_at = $3, finished_at = $3, resume_at = NULL
            WHERE id = $1 AND tenant_id = $2 AND status IN ('{J.Scheduled}', {OpenJob}, '{J.Paused}')
            """, ct, jobId, tenantId, now);
        if (changed > 0)
        {
            await Sql.ExecuteAsync(conn, $"""
                UPDATE send_job_recipients SET status = '{R.Cancelled}', claimed_by = NULL, lease_until = NULL, updated_at = $2
                WHERE job_id = $1 AND is_open AND status = '{R.Pending}'
                """, ct, jobId, now);
        }
        await tx.CommitAsync(ct);
        return changed > 0;
    }

    /// <summary>
    /// Jobs that should be running but have no live runner (a crash between insert and schedule, a lost Hangfire job,
    /// a runner that died) and paused jobs whose retry time is well past (their scheduled resume was lost).
    /// </summary>
    public async Task<List<Guid>> FindStalledAsync(CancellationToken ct)
    {
        var stalled = new List<Guid>();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, $"""
            SELECT j.id FROM send_jobs j
            WHERE (j.status = '{J.Scheduled}' AND j.scheduled_at < $1 - interval '2 minutes')
               -- A job waiting for its sending limit has no leases but a runner: not stalled until well past its window.
               OR (j.status = '{J.Paused}' AND j.resume_at < $1 - interval '1 minute')
               OR (j.status IN ({OpenJob}) AND COALESCE(j.started_at, j.scheduled_at) < $1 - interval '2 minutes'
                   -- A live runner renews the job's runner lease (its rows read for delivery carry none until marked).
                   AND (j.runner_lease_until IS NULL OR j.runner_lease_until <= $1)
                   AND NOT EXISTS (SELECT 1 FROM send_job_recipients r
                                   WHERE r.job_id = j.id AND r.is_open AND r.status = '{R.Sending}' AND r.lease_until > $1)
                   AND (j.throttled_until IS NULL OR j.throttled_until < $1 - interval '2 minutes')
                   AND (j.snapshot_completed_at IS NULL
                        OR EXISTS (SELECT 1 FROM send_job_recipients r
                                   WHERE r.job_id = j.id AND r.is_open AND r.status = '{R.Pending}' AND (r.next_attempt_at IS NULL OR r.next_attempt_at < $1 - interval '1 minute'))
                        OR NOT EXISTS (SELECT 1 FROM send_job_recipients r WHERE r.job_id = j.id AND r.is_open)))
            LIMIT 100
            """, clock.GetUtcNow());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            stalled.Add(reader.GetGuid(0));
        }
        return stalled;
    }

    // ---------------------------------------------------------------- recipients

    /// <summary>
    /// Reads up to <paramref name="limit"/> due pending rows for delivery, in id order, without writing them: the job's
    /// claim cursor hands each runner the next range of ids (the job row is locked for the moment it moves, so runners
    /// read disjoint ranges), and once the cursor has passed every row, rows left pending behind it (deferred and now
    /// due, handed back by a stopping worker, read by a runner that died) are swept from the start, except
    /// <paramref name="held"/> (this runner's rows not yet marked). A row two runners read is sent by the one whose
    /// <see cref="MarkSendingSql"/> takes it; the other's mark finds it no longer pending. The range is read by the
    /// database function <c>send_job_recipients_ahead</c> (migration DeliveryResultHot), an ordered walk of
    /// <c>(job_id, id)</c> that does not depend on the planner's estimate of pending rows. The sweep starts at
    /// <paramref name="openFrom"/>, below which this run found no open row (<see cref="FirstOpenWorkAsync"/>).
    /// </summary>
    internal static async Task<List<Claimed>> ReadDueAsync(NpgsqlConnection conn, Guid jobId, DateTimeOffset now, int limit, long[] held, long openFrom,
        CancellationToken ct)
    {
        var batch = await ReadAsync(conn, ReadAheadSql, ct, jobId, now, limit);
        if (batch.Count == 0)
        {
            batch = await ReadAsync(conn, SweepSql, ct, jobId, now, limit, held, openFrom);
        }
        batch.Sort((a, b) => a.Id.CompareTo(b.Id));
        return batch;
    }

    /// <summary>
    /// A job's rows from id <paramref name="from"/> on (ordered by <c>job_id, id</c>): a range of
    /// <c>ix_send_job_recipients_job_id_id</c> stated as a row comparison bounded by the job, so the walk starts at
    /// (job, from). Written <c>job_id = $1 AND id &gt;= $2 ORDER BY id</c>, a generic plan walked the primary key from
    /// <c>$2</c> through every earlier job's rows (the function <c>send_job_recipients_ahead</c> likewise, migration
    /// ClaimReadsStartAtTheJob).
    /// </summary>
    internal static string JobRowsFrom(string job, string from) => $"(job_id, id) >= ({job}, {from}) AND job_id <= {job}";

    /// <summary>The rows left pending behind the claim cursor, from the first open one. $1 job, $2 now, $3 limit, $4 held ids, $5 from.</summary>
    internal static readonly string SweepSql = $"""
        SELECT id, subscriber_id, email, preferences::text, unsubscribe_url, attempts, message_id FROM send_job_recipients
        WHERE {JobRowsFrom("$1", "$5")} AND is_open AND status = '{R.Pending}' AND (next_attempt_at IS NULL OR next_attempt_at <= $2) AND id <> ALL($4)
        ORDER BY job_id, id LIMIT $3
        """;

    /// <summary>The next range after the job's claim cursor, and the cursor moved past it. $1 job, $2 now, $3 limit.</summary>
    internal const string ReadAheadSql = """
        WITH cursor AS (SELECT claim_cursor FROM send_jobs WHERE id = $1 FOR NO KEY UPDATE),
        ahead AS (SELECT * FROM send_job_recipients_ahead($1, (SELECT claim_cursor FROM cursor), $2, $3)),
        moved AS (UPDATE send_jobs SET claim_cursor = (SELECT max(id) FROM ahead) WHERE id = $1 AND EXISTS (SELECT 1 FROM ahead))
        SELECT id, subscriber_id, email, preferences, unsubscribe_url, attempts, message_id FROM ahead
        """;

    private static async Task<List<Claimed>> ReadAsync(NpgsqlConnection conn, string sql, CancellationToken ct, params object[] args)
    {
        var batch = new List<Claimed>();
        await using var cmd = Sql.Command(conn, sql, args);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            batch.Add(new Claimed(reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt32(5), reader.IsDBNull(6) ? null : reader.GetString(6)));
        }
        return batch;
    }

    /// <summary>
    /// Whether the job still has work at or after row <paramref name="from"/>: the first open row's id, or
    /// <paramref name="from"/> while the snapshot is not complete; null when there is none. No index holds the status,
    /// so this walks the job's rows from <paramref name="from"/>: a run passes the id found last time (rows close, and
    /// only an operator's retry of failed rows opens them again, which enqueues a runner of its own), so a job's tail,
    /// polled every PollInterval while deferred rows wait, does not read the whole job each time.
    /// </summary>
    internal static async Task<long?> FirstOpenWorkAsync(NpgsqlConnection conn, Guid jobId, long from, CancellationToken ct)
    {
        await using var cmd = Sql.Command(conn, FirstOpenWorkSql, jobId, from);
        return await cmd.ExecuteScalarAsync(ct) is long first ? first : null;
    }

    /// <summary>$1 job, $2 from.</summary>
    internal static readonly string FirstOpenWorkSql = $"""
        SELECT COALESCE(
            (SELECT id FROM send_job_recipients WHERE {JobRowsFrom("$1", "$2")} AND is_open ORDER BY job_id, id LIMIT 1),
            CASE WHEN EXISTS (SELECT 1 FROM send_jobs WHERE id = $1 AND snapshot_completed_at IS NULL) THEN $2 END)
        """;

    /// <summary>pending → suppressed, with why (the tenant's suppression list, or Member Center's re-check).</summary>
    internal Task SkipAsync(NpgsqlConnection conn, Dictionary<long, string> skipped, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, $"""
            UPDATE send_job_recipients r SET status = '{R.Suppressed}', detail = d.detail, updated_at = $3
            FROM unnest($1::bigint[], $2::text[]) AS d(id, detail) WHERE r.id = d.id AND r.status = '{R.Pending}'
            """, ct, skipped.Keys.ToArray(), skipped.Values.ToArray(), clock.GetUtcNow());

    /// <summary>
    /// Rows whose runner died in an attempt: sending → unknown, never retried (at-most-once). (Rows it had read but not
    /// marked are still pending and are swept up by <see cref="ReadDueAsync"/>.) Returns how many became unknown.
    /// </summary>
    internal async Task<int> RecoverExpiredAsync(NpgsqlConnection conn, Guid jobId, long openFrom, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var unknown = await Sql.ExecuteAsync(conn, $"""
            UPDATE send_job_recipients SET status = '{R.Unknown}', claimed_by = NULL, lease_until = NULL, updated_at = $2, detail = $3
            WHERE job_id = $1 AND id >= $4 AND is_open AND status = '{R.Sending}' AND lease_until < $2
            """, ct, jobId, now, RunnerStoppedOutcome, openFrom);
        if (unknown > 0)
        {
            LogUnknownOutcome(logger, jobId, unknown);
        }
        return unknown;
    }

    /// <summary>
    /// Extends the job's runner lease (what tells the watchdog a runner is alive) and the leases of the rows
    /// <paramref name="runnerId"/> has in an attempt (sending).
    /// </summary>
    internal async Task RenewLeasesAsync(Guid jobId, Guid runnerId, TimeSpan lease, long openFrom, CancellationToken ct)
    {
        var until = clock.GetUtcNow() + lease;
        await Sql.ExecuteAsync(db, "UPDATE send_jobs SET runner_lease_until = GREATEST(runner_lease_until, $2) WHERE id = $1", ct, jobId, until);
        // SKIP LOCKED: a row a worker is updating right now gets its lease from that update (or loses it on completion);
        // waiting for it could deadlock with the ledger's batch.
        await Sql.ExecuteAsync(db, $"""
            UPDATE send_job_recipients SET lease_until = $3
            WHERE id IN (SELECT id FROM send_job_recipients
                         WHERE job_id = $1 AND id >= $4 AND is_open AND claimed_by = $2 AND status = '{R.Sending}'
                         FOR UPDATE SKIP LOCKED)
            """, ct, jobId, runnerId, until, openFrom);
    }

    /// <summary>
    /// At a runner's end, if the job was cancelled: its pending rows (a deferral, or a stopping worker's hand-back,
    /// recorded after the cancel) are cancelled too, as nothing will retry them. (Rows read but never marked are still
    /// pending: a running job's next runner reads them again.)
    /// </summary>
    internal Task ReleaseRunnerAsync(Guid jobId) =>
        Sql.ExecuteAsync(db, $"""
            UPDATE send_job_recipients r SET status = '{R.Cancelled}', claimed_by = NULL, lease_until = NULL, updated_at = $2
            FROM send_jobs j WHERE j.id = r.job_id AND r.job_id = $1 AND j.status = '{J.Cancelled}' AND r.is_open AND r.status = '{R.Pending}'
            """, CancellationToken.None, jobId, clock.GetUtcNow());

    /// <summary>
    /// The rows of recently cancelled jobs whose runner died: pending → cancelled, sending → unknown (as
    /// expired-lease recovery does for running jobs).
    /// </summary>
    internal Task SettleCancelledAsync(CancellationToken ct) =>
        Sql.ExecuteAsync(db, $"""
            UPDATE send_job_recipients r SET status = CASE WHEN r.status = '{R.Sending}' THEN '{R.Unknown}' ELSE '{R.Cancelled}' END,
                detail = CASE WHEN r.status = '{R.Sending}' THEN $2 ELSE r.detail END,
                claimed_by = NULL, lease_until = NULL, updated_at = $1
            FROM send_jobs j
            WHERE j.id = r.job_id AND j.status = '{J.Cancelled}' AND j.cancelled_at > $1 - interval '1 day'
              AND r.is_open AND (r.status = '{R.Pending}' OR (r.status = '{R.Sending}' AND r.lease_until < $1))
            """, ct, clock.GetUtcNow(), RunnerStoppedOutcome);

    // The ledger's statements (DeliveryLedger runs them in one group-committed batch).

    /// <summary>
    /// pending (due) → sending by the runner (attempts + 1), returning the rows it took with their attempts: the one
    /// gate between rows read for delivery and an attempt. A row another runner marked first, or that was suppressed,
    /// cancelled or deferred meanwhile, is not taken. $1 ids, $2 runner, $3 lease_until, $4 now.
    /// </summary>
    internal const string MarkSendingSql = $"""
        UPDATE send_job_recipients SET status = '{R.Sending}', attempts = attempts + 1, claimed_by = $2, lease_until = $3, updated_at = $4
        WHERE id = ANY($1) AND status = '{R.Pending}' AND (next_attempt_at IS NULL OR next_attempt_at <= $4)
        RETURNING id, attempts
        """;

    /// <summary>
    /// sending → sent | failed | unknown, or pending with next_attempt_at (deferred), returning the recorded rows (as
    /// <c>recorded</c> in the statements below). The row keeps its message id (chosen by the snapshot) unless the result
    /// names another (an ESP's own id): unchanged, the update can be HOT.
    /// $1 ids, $2 statuses, $3 message ids, $4 details, $5 next_attempt_at, $6 now (and $7 the runner, for the counts below).
    /// </summary>
    private const string RecordResultsUpdateSql = $"""
        UPDATE send_job_recipients r SET status = d.status,
            message_id = COALESCE(d.message_id, r.message_id), detail = d.detail, updated_at = $6,
            sent_at = CASE WHEN d.status = '{R.Sent}' THEN $6 ELSE r.sent_at END, next_attempt_at = d.next_attempt_at,
            claimed_by = NULL, lease_until = NULL
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS d(id, status, message_id, detail, next_attempt_at)
        WHERE r.id = d.id
        RETURNING r.id, r.job_id, r.email, r.message_id, r.detail, r.status
        """;

    /// <summary>
    /// The reputation guard's hourly counters of the recorded results (Features/Reputation): accepted messages and
    /// mailboxes refused as unknown count as sent, the refusals also as hard bounces. One row per runner ($7) and hour:
    /// the row stays locked until the ledger's synchronous commit, so runners sharing a row (two processes on one job
    /// did) would take turns at each other's WAL flush.
    /// </summary>
    private const string CountResultsSql = $"""
        INSERT INTO reputation_counts AS c (tenant_id, hour, source_id, sent, hard_bounces, complaints)
        SELECT j.tenant_id, date_trunc('hour', $6::timestamptz, 'UTC'), $7::uuid, count(*),
            count(*) FILTER (WHERE x.status = '{R.Failed}'), 0
        FROM recorded x JOIN send_jobs j ON j.id = x.job_id
        WHERE x.status = '{R.Sent}' OR (x.status = '{R.Failed}' AND x.detail ~ '{Features.Suppressions.SuppressionStore.MailboxRejectedPattern}')
        GROUP BY j.tenant_id
        ON CONFLICT (tenant_id, hour, source_id) DO UPDATE SET sent = c.sent + excluded.sent, hard_bounces = c.hard_bounces + excluded.hard_bounces
        """;

    /// <summary>The results (<see cref="RecordResultsUpdateSql"/>) and their reputation counts, in one statement.</summary>
    internal const string RecordResultsSql = $"""
        WITH recorded AS ({RecordResultsUpdateSql})
        {CountResultsSql}
        """;

    /// <summary>
    /// <see cref="RecordResultsSql"/> that also queues the tenant's webhook events of the results (sent, deferred,
    /// rejected) in the same statement, so an event exists exactly when its status change committed. $8 the tenant.
    /// </summary>
    internal const string RecordResultsAndEventsSql = $"""
        WITH recorded AS ({RecordResultsUpdateSql}),
        counted AS ({CountResultsSql}    RETURNING 0)
        {Features.Webhooks.WebhookPublisher.BulkResultEventsSql}
        """;

    /// <summary>sending → pending, attempts restored: the message was never handed over (stopping, or the transport was unavailable). $1 ids, $2 runner.</summary>
    internal const string UnmarkSql = $"""
        UPDATE send_job_recipients SET status = '{R.Pending}', attempts = attempts - 1, claimed_by = NULL, lease_until = NULL
        WHERE id = ANY($1) AND claimed_by = $2 AND status = '{R.Sending}'
        """;

    // ESP events (EmailEventProcessor), inside the event's transaction.

    /// <summary>sent → delivered.</summary>
    internal static Task MarkDeliveredAsync(NpgsqlConnection conn, NpgsqlTransaction tx, long recipientId, DateTimeOffset now, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"UPDATE send_job_recipients SET status = '{R.Delivered}', updated_at = $2 WHERE id = $1 AND status = '{R.Sent}'",
            ct, recipientId, now);

    /// <summary>sent → failed: the ESP accepted the request and then refused the message.</summary>
    internal static Task MarkRejectedByEspAsync(NpgsqlConnection conn, NpgsqlTransaction tx, long recipientId, string detail, DateTimeOffset now, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"""
            UPDATE send_job_recipients SET status = '{R.Failed}', detail = left($3, 1000), updated_at = $2 WHERE id = $1 AND status = '{R.Sent}'
            """, ct, recipientId, now, detail);

    /// <summary>sent | delivered → bounced.</summary>
    internal static Task MarkBouncedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, long recipientId, string detail, DateTimeOffset now, CancellationToken ct) =>
        Sql.ExecuteAsync(conn, tx, $"""
            UPDATE send_job_recipients SET status = '{R.Bounced}', detail = left($3, 1000), updated_at = $2
            WHERE id = $1 AND status IN ('{R.Sent}', '{R.Delivered}')
            """, ct, recipientId, now, detail);

    private static string Truncate(string s, int max) => s.Length > max ? s[..max] : s;

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Count} failed recipients put back to pending by an operator")]
    private static partial void LogRetryFailed(ILogger logger, Guid jobId, int count);

    [LoggerMessage(LogLevel.Information, "Send job {JobId}: {Count} unknown recipients resolved as {Resolution} by {ResolvedBy}")]
    private static partial void LogResolved(ILogger logger, Guid jobId, int count, string resolution, string resolvedBy);

    [LoggerMessage(LogLevel.Error, "Send job {JobId} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, Guid jobId, string error);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId} paused until {ResumeAt} (null: until an operator resumes it): {Reason}")]
    private static partial void LogPaused(ILogger logger, Guid jobId, string reason, DateTimeOffset? resumeAt);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId}: {Count} recipients were in an SMTP transaction when their runner stopped; recorded as unknown")]
    private static partial void LogUnknownOutcome(ILogger logger, Guid jobId, int count);
}
