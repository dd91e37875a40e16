using System.Globalization;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.SenderDomains;
using Newsletter.Contracts.Webhooks;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Features.Webhooks;

namespace SendEngine.Features.Reputation;

/// <summary>One rolling window's counts and rates; the rates are null below the minimum volume.</summary>
public sealed record ReputationWindow(long Delivered, long HardBounces, long Complaints, double? BounceRate, double? ComplaintRate);

/// <summary>A tenant's reputation as the APIs show it.</summary>
public sealed record ReputationReport(
    string TenantId,
    string State,
    string? Reason,
    bool BulkPaused,
    bool TransactionalPaused,
    DateTimeOffset? PausedAt,
    string? Note,
    DateTimeOffset? BaselineAt,
    ReputationWindow Window24h,
    ReputationWindow Window7d,
    ReputationThresholds Thresholds,
    SendingLimitsReport Limits);

public sealed record ReputationThresholds(double WarnBounceRate, double WarnComplaintRate, double PauseBounceRate, double PauseComplaintRate,
    long MinimumVolume, int JobSampleSize, double JobBounceRate);

/// <summary>
/// The limits in force (null: unlimited), whether an operator set them, this hour's and day's use, and the warm-up of
/// each verified sender domain (the runner holds a job From that domain to it as well).
/// </summary>
public sealed record SendingLimitsReport(int? MessagesPerHour, int? MessagesPerDay, long? WarmupDailyLimit, bool SetByOperator,
    long SentThisHour, long SentToday, DateTimeOffset? FirstSendAt, IReadOnlyList<SenderDomainWarmup> SenderDomains);

/// <summary>
/// The reputation guard's state per tenant (<c>tenant_reputation</c>), its rates from the hourly counters
/// (<c>reputation_counts</c>), and the transitions: warning, pause (the tenant's bulk jobs with it, in one transaction
/// with the tenant webhook event) and an operator's resume, which sets the baseline.
/// </summary>
public sealed partial class ReputationStore(
    NpgsqlDataSource db,
    RecipientStore recipients,
    WebhookPublisher webhooks,
    SendingLimits limits,
    ReputationMetrics metrics,
    IOptions<ReputationOptions> options,
    TimeProvider clock,
    ILogger<ReputationStore> logger)
{
    /// <summary>Creates a tenant's row if missing ($1 tenant, $2 now).</summary>
    public const string EnsureRowSql = """
        INSERT INTO tenant_reputation (tenant_id, state, bulk_paused, transactional_paused, changed_at, baseline_sent, baseline_hard_bounces,
            baseline_complaints, limits_set)
        VALUES ($1, 'ok', false, false, $2, 0, 0, 0, false) ON CONFLICT (tenant_id) DO NOTHING
        """;

    public const string PausedByTenant = "tenant";
    public const string PausedByList = "list";

    private static DateTimeOffset HourOf(DateTimeOffset t) => new(t.UtcTicks - t.UtcTicks % TimeSpan.TicksPerHour, TimeSpan.Zero);

    /// <summary>Rates of every tenant with counts in the last 7 days (or only <paramref name="tenantId"/>).</summary>
    public async Task<Dictionary<Guid, (ReputationWindow Day, ReputationWindow Week)>> RatesAsync(NpgsqlConnection conn, Guid? tenantId, CancellationToken ct)
    {
        var o = options.Value;
        var hour = HourOf(clock.GetUtcNow());
        var dayStart = hour.AddHours(-23);
        var weekStart = hour.AddHours(-167);
        // Hours before an operator's resume are left out, and of the resume's own hour what was counted before it.
        await using var cmd = Sql.Command(conn, """
            SELECT c.tenant_id,
                COALESCE(sum(c.sent) FILTER (WHERE c.hour >= $1), 0)::bigint, COALESCE(sum(c.hard_bounces) FILTER (WHERE c.hour >= $1), 0)::bigint,
                COALESCE(sum(c.complaints) FILTER (WHERE c.hour >= $1), 0)::bigint,
                sum(c.sent)::bigint, sum(c.hard_bounces)::bigint, sum(c.complaints)::bigint,
                t.baseline_hour, COALESCE(t.baseline_sent, 0), COALESCE(t.baseline_hard_bounces, 0), COALESCE(t.baseline_complaints, 0)
            FROM reputation_counts c LEFT JOIN tenant_reputation t ON t.tenant_id = c.tenant_id
            WHERE c.hour >= $2 AND (t.baseline_hour IS NULL OR c.hour >= t.baseline_hour) AND ($3::uuid IS NULL OR c.tenant_id = $3)
            GROUP BY c.tenant_id, t.baseline_hour, t.baseline_sent, t.baseline_hard_bounces, t.baseline_complaints
            """, dayStart, weekStart, (object?)tenantId ?? DBNull.Value);
        var rates = new Dictionary<Guid, (ReputationWindow, ReputationWindow)>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            long s1 = reader.GetInt64(1), b1 = reader.GetInt64(2), c1 = reader.GetInt64(3), s7 = reader.GetInt64(4), b7 = reader.GetInt64(5), c7 = reader.GetInt64(6);
            if (!reader.IsDBNull(7))
            {
                var baseline = reader.GetFieldValue<DateTimeOffset>(7);
                long bs = reader.GetInt64(8), bb = reader.GetInt64(9), bc = reader.GetInt64(10);
                (s7, b7, c7) = (s7 - bs, b7 - bb, c7 - bc);
                if (baseline >= dayStart)
                {
                    (s1, b1, c1) = (s1 - bs, b1 - bb, c1 - bc);
                }
            }
            rates[reader.GetGuid(0)] = (Window(s1, b1, c1, o), Window(s7, b7, c7, o));
        }
        return rates;
    }

    private static ReputationWindow Window(long sent, long bounces, long complaints, ReputationOptions o)
    {
        (sent, bounces, complaints) = (Math.Max(0, sent), Math.Max(0, bounces), Math.Max(0, complaints));
        return sent >= o.MinimumVolume && sent > 0
            ? new ReputationWindow(sent, bounces, complaints, Math.Round((double)bounces / sent, 6), Math.Round((double)complaints / sent, 6))
            : new ReputationWindow(sent, bounces, complaints, null, null);
    }

    /// <summary>The state the rates call for, and why (null reason: ok).</summary>
    public (string State, string? Reason) Judge(ReputationWindow day, ReputationWindow week)
    {
        var o = options.Value;
        foreach (var (state, bounce, complaint) in new[] { (ReputationStates.Paused, o.PauseBounceRate, o.PauseComplaintRate), (ReputationStates.Warning, o.WarnBounceRate, o.WarnComplaintRate) })
        {
            foreach (var (name, w) in new[] { ("24 h", day), ("7 days", week) })
            {
                if (w.BounceRate >= bounce)
                {
                    return (state, $"hard bounce rate {Percent(w.BounceRate.Value)} over {name} ({w.HardBounces} of {w.Delivered} delivered) reached the {state} threshold of {Percent(bounce)}");
                }
                if (w.ComplaintRate >= complaint)
                {
                    return (state, $"complaint rate {Percent(w.ComplaintRate.Value)} over {name} ({w.Complaints} of {w.Delivered} delivered) reached the {state} threshold of {Percent(complaint)}");
                }
            }
        }
        return (ReputationStates.Ok, null);
    }

    private static string Percent(double rate) => (rate * 100).ToString("0.###", CultureInfo.InvariantCulture) + " %";

    /// <summary>The tenant's report: state, rates, thresholds and limits.</summary>
    public async Task<ReputationReport> ReportAsync(Guid tenantId, CancellationToken ct)
    {
        var o = options.Value;
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        var rates = await RatesAsync(conn, tenantId, ct);
        var (day, week) = rates.TryGetValue(tenantId, out var r) ? r : (Window(0, 0, 0, o), Window(0, 0, 0, o));
        string state = ReputationStates.Ok;
        string? reason = null, note = null;
        bool bulk = false, transactional = false, limitsSet = false;
        DateTimeOffset? pausedAt = null, baseline = null, firstSend = null;
        int? perHour = null, perDay = null;
        await using (var cmd = Sql.Command(conn, """
            SELECT state, reason, bulk_paused, transactional_paused, paused_at, note, baseline_hour, limits_set, messages_per_hour, messages_per_day, first_send_at
            FROM tenant_reputation WHERE tenant_id = $1
            """, tenantId))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            if (await reader.ReadAsync(ct))
            {
                state = reader.GetString(0);
                reason = reader.IsDBNull(1) ? null : reader.GetString(1);
                bulk = reader.GetBoolean(2);
                transactional = reader.GetBoolean(3);
                pausedAt = reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4);
                note = reader.IsDBNull(5) ? null : reader.GetString(5);
                baseline = reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6);
                limitsSet = reader.GetBoolean(7);
                perHour = reader.IsDBNull(8) ? null : reader.GetInt32(8);
                perDay = reader.IsDBNull(9) ? null : reader.GetInt32(9);
                firstSend = reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10);
            }
        }
        var effective = limits.Effective(limitsSet, perHour, perDay, firstSend, now);
        var window = limits.Window(now);
        var today = limits.Day(now);
        var hourUse = await Sql.ScalarAsync<long>(conn, "SELECT COALESCE(sum(messages), 0)::bigint FROM send_counters WHERE tenant_id = $1 AND domain = '' AND window_start = $2", ct, tenantId, window.Start);
        var dayUse = await Sql.ScalarAsync<long>(conn,
            "SELECT COALESCE(sum(messages), 0)::bigint FROM send_counters WHERE tenant_id = $1 AND domain = '' AND window_start >= $2 AND window_start < $3", ct, tenantId, today.Start, today.End);
        // Each verified domain's warm-up as SendingLimits.ClaimAsync computes it, from its verified_at; its share of today
        // is only counted while it warms up (send_counters rows of its own).
        var domains = new List<SenderDomainWarmup>();
        await using (var cmd = Sql.Command(conn, """
            SELECT d.domain, d.verified_at, COALESCE((SELECT sum(c.messages) FROM send_counters c
                WHERE c.tenant_id = d.tenant_id AND c.domain = d.domain AND c.window_start >= $2 AND c.window_start < $3), 0)::bigint
            FROM sender_domains d WHERE d.tenant_id = $1 AND d.status = 'verified' AND d.verified_at IS NOT NULL ORDER BY d.domain
            """, tenantId, today.Start, today.End))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                var verifiedAt = reader.GetFieldValue<DateTimeOffset>(1);
                var cap = limits.Effective(limitsSet, perHour, perDay, verifiedAt, now).Warmup;
                domains.Add(new SenderDomainWarmup(reader.GetString(0), verifiedAt, cap is not null, cap, cap is null ? null : reader.GetInt64(2)));
            }
        }
        return new ReputationReport(tenantId.ToString(), state, reason, bulk, transactional, pausedAt, note, baseline, day, week,
            new ReputationThresholds(o.WarnBounceRate, o.WarnComplaintRate, o.PauseBounceRate, o.PauseComplaintRate, o.MinimumVolume, o.JobSampleSize, o.JobBounceRate),
            new SendingLimitsReport(effective.PerHour, effective.PerDay, effective.Warmup, limitsSet, hourUse, dayUse, firstSend, domains));
    }

    /// <summary>One row (transactional_paused) when the tenant has a reputation record, for a caller's batch.</summary>
    public static NpgsqlBatchCommand TransactionalPausedCommand(Guid tenantId) =>
        Sql.BatchCommand("SELECT transactional_paused FROM tenant_reputation WHERE tenant_id = $1", tenantId);

    /// <summary>Whether the tenant's bulk (or transactional) mail is paused.</summary>
    public async Task<(bool Bulk, bool Transactional)> PausedAsync(Guid tenantId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, "SELECT bulk_paused, transactional_paused FROM tenant_reputation WHERE tenant_id = $1", tenantId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? (reader.GetBoolean(0), reader.GetBoolean(1)) : (false, false);
    }

    /// <summary>
    /// One evaluation: every tenant's rates against the thresholds (warning, pause), the jobs of paused tenants kept
    /// paused, and the purchased-list check of running jobs. Returns how many tenants were looked at.
    /// </summary>
    public async Task<int> EvaluateAsync(CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        var rates = await RatesAsync(conn, null, ct);
        var states = new Dictionary<Guid, string>();
        await using (var cmd = Sql.Command(conn, "SELECT tenant_id, state FROM tenant_reputation WHERE state <> 'ok' OR bulk_paused"))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                states[reader.GetGuid(0)] = reader.GetString(1);
            }
        }
        var published = false;
        foreach (var (tenantId, (day, week)) in rates)
        {
            var current = states.GetValueOrDefault(tenantId, ReputationStates.Ok);
            var (wanted, reason) = Judge(day, week);
            if (wanted == current || current == ReputationStates.Paused)
            {
                continue; // a paused tenant stays paused until an operator resumes it
            }
            published |= await TransitionAsync(conn, tenantId, ct);
        }
        // Jobs of paused tenants that started meanwhile (created in a race with the pause, or resumed by an outage's timer).
        foreach (var (tenantId, _) in states)
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            var paused = await Sql.ScalarAsync<bool>(conn, "SELECT bulk_paused FROM tenant_reputation WHERE tenant_id = $1 FOR UPDATE", ct, tenantId);
            var reasonNow = await Sql.ScalarAsync<string>(conn, "SELECT reason FROM tenant_reputation WHERE tenant_id = $1", ct, tenantId);
            if (paused)
            {
                await RecipientStore.PauseGuardedAsync(conn, tx, tenantId, null, PausedByTenant, JobReason(reasonNow), ct);
            }
            await tx.CommitAsync(ct);
        }
        published |= await CheckJobsAsync(conn, ct);
        if (published)
        {
            webhooks.Notify();
        }
        metrics.PausedTenants(await Sql.ScalarAsync<long>(conn, "SELECT count(*) FROM tenant_reputation WHERE bulk_paused", ct));
        // Counters past every window: the rates need 7 days, the limits one day.
        var now = clock.GetUtcNow();
        await Sql.ExecuteAsync(conn, "DELETE FROM reputation_counts WHERE hour < $1", ct, now.AddDays(-8));
        await Sql.ExecuteAsync(conn, "DELETE FROM send_counters WHERE window_start < $1", ct, now - limits.Day(now).End.Subtract(limits.Day(now).Start) * 2);
        return rates.Count;
    }

    private static string Kind(string? reason) => reason?.StartsWith("complaint", StringComparison.Ordinal) == true ? "complaint" : "bounce";

    private static string JobReason(string? reason) => "paused by the reputation guard: " + (reason ?? "the tenant's sending is paused") + "; a platform operator resumes it";

    /// <summary>
    /// Moves the tenant to the state its rates call for. The decision is taken again under the row's lock with rates
    /// read then: the evaluation's first read may predate an operator's resume (which takes the same lock and moves the
    /// baseline), and judging the old window against the new state would pause the tenant again at once.
    /// </summary>
    private async Task<bool> TransitionAsync(NpgsqlConnection conn, Guid tenantId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var tx = await conn.BeginTransactionAsync(ct);
        await Sql.ExecuteAsync(conn, tx, EnsureRowSql, ct, tenantId, now);
        var current = await Sql.ScalarAsync<string>(conn, "SELECT state FROM tenant_reputation WHERE tenant_id = $1 FOR UPDATE", ct, tenantId);
        var (day, week) = (await RatesAsync(conn, tenantId, ct)).TryGetValue(tenantId, out var r) ? r : (Window(0, 0, 0, options.Value), Window(0, 0, 0, options.Value));
        var (wanted, reason) = Judge(day, week);
        if (wanted == current || current == ReputationStates.Paused)
        {
            return false;
        }
        await Sql.ExecuteAsync(conn, tx, """
            UPDATE tenant_reputation SET state = $2, reason = $3, changed_at = $4,
                bulk_paused = bulk_paused OR $2 = 'paused', paused_at = CASE WHEN $2 = 'paused' THEN $4 ELSE paused_at END
            WHERE tenant_id = $1
            """, ct, tenantId, wanted, (object?)reason ?? DBNull.Value, now);
        var jobs = wanted == ReputationStates.Paused
            ? await RecipientStore.PauseGuardedAsync(conn, tx, tenantId, null, PausedByTenant, JobReason(reason), ct)
            : [];
        var published = 0;
        if (wanted is ReputationStates.Paused or ReputationStates.Warning)
        {
            published = await webhooks.PublishAsync(conn, tx, tenantId,
                wanted == ReputationStates.Paused ? WebhookEventTypes.ReputationPaused : WebhookEventTypes.ReputationWarning,
                new ReputationEvent(tenantId.ToString(), wanted, wanted == ReputationStates.Paused ? "bulk" : null, reason, null, jobs.Select(j => j.ToString()).ToList(), day, week),
                now, ct);
        }
        await tx.CommitAsync(ct);
        if (wanted == ReputationStates.Paused)
        {
            metrics.Paused(Kind(reason));
            LogTenantPaused(logger, tenantId, reason, jobs.Count);
        }
        else if (wanted == ReputationStates.Warning)
        {
            metrics.Warning(Kind(reason));
            LogTenantWarning(logger, tenantId, reason);
        }
        return published > 0;
    }

    /// <summary>
    /// The purchased-list check: each sending job not yet checked, its first <see cref="ReputationOptions.JobSampleSize"/>
    /// recipients (by id, a bounded index range). Once enough are decided and more than the share hard-bounced (a
    /// synchronous 5.1.x refusal or a bounce event), the job is paused; once the whole sample is decided below it, the
    /// job is marked checked.
    /// </summary>
    private async Task<bool> CheckJobsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        var o = options.Value;
        var jobs = new List<(Guid Id, Guid TenantId)>();
        await using (var cmd = Sql.Command(conn, "SELECT id, tenant_id FROM send_jobs WHERE status = 'sending' AND NOT list_checked LIMIT 1000"))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                jobs.Add((reader.GetGuid(0), reader.GetGuid(1)));
            }
        }
        var published = false;
        foreach (var (jobId, tenantId) in jobs)
        {
            long sample, decided, bounced;
            await using (var cmd = Sql.Command(conn, $"""
                SELECT count(*), count(*) FILTER (WHERE status IN ('sent', 'delivered', 'bounced', 'failed')),
                    count(*) FILTER (WHERE status = 'bounced' OR (status = 'failed' AND detail ~ '{Suppressions.SuppressionStore.MailboxRejectedPattern}'))
                FROM (SELECT status, detail FROM send_job_recipients WHERE {Delivery.RecipientStore.JobRowsFrom("$1", "0")} ORDER BY job_id, id LIMIT $2) s
                """, jobId, o.JobSampleSize))
            await using (var reader = await cmd.ExecuteReaderAsync(ct))
            {
                await reader.ReadAsync(ct);
                (sample, decided, bounced) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
            }
            var share = decided == 0 ? 0 : (double)bounced / decided;
            if (decided >= Math.Min(o.JobMinimumSample, o.JobSampleSize) && share > o.JobBounceRate)
            {
                var reason = $"{bounced} of the first {decided} recipients hard-bounced ({Percent(share)}, over {Percent(o.JobBounceRate)}): the list looks bought or stale; clean it, then ask an operator to resume";
                var now = clock.GetUtcNow();
                await using var tx = await conn.BeginTransactionAsync(ct);
                var paused = await RecipientStore.PauseGuardedAsync(conn, tx, tenantId, jobId, PausedByList, "paused by the reputation guard: " + reason, ct);
                await Sql.ExecuteAsync(conn, tx, "UPDATE send_jobs SET list_checked = true WHERE id = $1", ct, jobId);
                if (paused.Count > 0)
                {
                    published |= await webhooks.PublishAsync(conn, tx, tenantId, WebhookEventTypes.ReputationPaused,
                        new ReputationEvent(tenantId.ToString(), ReputationStates.Paused, "job", reason, jobId.ToString(), [jobId.ToString()], null, null), now, ct) > 0;
                }
                await tx.CommitAsync(ct);
                if (paused.Count > 0)
                {
                    metrics.Paused("list");
                    LogJobPaused(logger, jobId, reason);
                }
            }
            else if (sample >= o.JobSampleSize && decided == sample)
            {
                await Sql.ExecuteAsync(conn, "UPDATE send_jobs SET list_checked = true WHERE id = $1", ct, jobId);
            }
        }
        return published;
    }

    /// <summary>Whether the purchased-list check holds one of the tenant's jobs.</summary>
    public async Task<bool> HasGuardedJobsAsync(Guid tenantId, CancellationToken ct) =>
        await Sql.ScalarAsync<bool>(db, "SELECT EXISTS (SELECT 1 FROM send_jobs WHERE tenant_id = $1 AND status = 'paused' AND paused_by IS NOT NULL)", ct, tenantId);

    /// <summary>What an operator's pause or resume did.</summary>
    public sealed record OperatorChange(ReputationReport Before, ReputationReport After, List<Guid> Jobs);

    /// <summary>An operator pauses the tenant's bulk mail, or all of it (<paramref name="all"/>: transactional too).</summary>
    public async Task<OperatorChange> PauseByOperatorAsync(Guid tenantId, bool all, string? note, CancellationToken ct)
    {
        var before = await ReportAsync(tenantId, ct);
        var now = clock.GetUtcNow();
        var reason = "paused by a platform operator" + (note is null ? "" : ": " + note);
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await Sql.ExecuteAsync(conn, tx, EnsureRowSql, ct, tenantId, now);
        var wasPaused = await Sql.ScalarAsync<bool>(conn, "SELECT bulk_paused FROM tenant_reputation WHERE tenant_id = $1 FOR UPDATE", ct, tenantId);
        await Sql.ExecuteAsync(conn, tx, """
            UPDATE tenant_reputation SET state = 'paused', bulk_paused = true, transactional_paused = transactional_paused OR $2,
                reason = CASE WHEN bulk_paused THEN reason ELSE $3 END, paused_at = COALESCE(CASE WHEN bulk_paused THEN paused_at END, $4),
                note = $5, changed_at = $4
            WHERE tenant_id = $1
            """, ct, tenantId, all, reason, now, (object?)note ?? DBNull.Value);
        var jobs = await RecipientStore.PauseGuardedAsync(conn, tx, tenantId, null, PausedByTenant, JobReason(reason), ct);
        var published = wasPaused ? 0 : await webhooks.PublishAsync(conn, tx, tenantId, WebhookEventTypes.ReputationPaused,
            new ReputationEvent(tenantId.ToString(), ReputationStates.Paused, all ? "all" : "bulk", reason, null, jobs.Select(j => j.ToString()).ToList(),
                before.Window24h, before.Window7d), now, ct);
        await tx.CommitAsync(ct);
        if (published > 0)
        {
            webhooks.Notify();
        }
        if (!wasPaused)
        {
            metrics.Paused("operator");
        }
        return new OperatorChange(before, await ReportAsync(tenantId, ct), jobs);
    }

    /// <summary>
    /// An operator resumes the tenant: bulk and transactional mail go on, the guard's paused jobs resume (the caller
    /// starts their runners), and the baseline is set to now, so only mail and events after the resume count until the
    /// windows refill (the old window cannot pause the tenant again at once).
    /// </summary>
    public async Task<OperatorChange?> ResumeByOperatorAsync(Guid tenantId, string note, CancellationToken ct)
    {
        var before = await ReportAsync(tenantId, ct);
        var now = clock.GetUtcNow();
        var hour = HourOf(now);
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await Sql.ExecuteAsync(conn, tx, EnsureRowSql, ct, tenantId, now);
        await Sql.ExecuteAsync(conn, tx, "SELECT 1 FROM tenant_reputation WHERE tenant_id = $1 FOR UPDATE", ct, tenantId);
        await Sql.ExecuteAsync(conn, tx, """
            UPDATE tenant_reputation t SET state = 'ok', reason = NULL, bulk_paused = false, transactional_paused = false, paused_at = NULL,
                note = $2, changed_at = $3, baseline_hour = $4,
                baseline_sent = COALESCE(c.sent, 0), baseline_hard_bounces = COALESCE(c.hard_bounces, 0), baseline_complaints = COALESCE(c.complaints, 0)
            FROM (SELECT sum(sent)::bigint AS sent, sum(hard_bounces)::bigint AS hard_bounces, sum(complaints)::bigint AS complaints
                  FROM reputation_counts WHERE tenant_id = $1 AND hour = $4) c
            WHERE t.tenant_id = $1
            """, ct, tenantId, note, now, hour);
        var resumed = await recipients.ResumeGuardedAsync(conn, tx, tenantId, ct);
        await tx.CommitAsync(ct);
        LogResumed(logger, tenantId, resumed.Count, note);
        return new OperatorChange(before, await ReportAsync(tenantId, ct), resumed.Where(r => r.Status != Newsletter.Contracts.SendJobStatuses.Scheduled).Select(r => r.Id).ToList());
    }

    /// <summary>An operator sets the tenant's limits (null: unlimited), or hands it back to the platform's (<paramref name="platform"/>).</summary>
    public async Task<ReputationReport> SetLimitsAsync(Guid tenantId, bool platform, int? perHour, int? perDay, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using (var conn = await db.OpenConnectionAsync(ct))
        await using (var tx = await conn.BeginTransactionAsync(ct))
        {
            await Sql.ExecuteAsync(conn, tx, EnsureRowSql, ct, tenantId, now);
            await Sql.ExecuteAsync(conn, tx, "UPDATE tenant_reputation SET limits_set = $2, messages_per_hour = $3, messages_per_day = $4 WHERE tenant_id = $1",
                ct, tenantId, !platform, platform || perHour is null ? DBNull.Value : perHour, platform || perDay is null ? DBNull.Value : perDay);
            await tx.CommitAsync(ct);
        }
        return await ReportAsync(tenantId, ct);
    }

    [LoggerMessage(LogLevel.Warning, "Tenant {TenantId} paused by the reputation guard ({Jobs} bulk jobs): {Reason}")]
    private static partial void LogTenantPaused(ILogger logger, Guid tenantId, string? reason, int jobs);

    [LoggerMessage(LogLevel.Warning, "Tenant {TenantId} warned by the reputation guard: {Reason}")]
    private static partial void LogTenantWarning(ILogger logger, Guid tenantId, string? reason);

    [LoggerMessage(LogLevel.Warning, "Send job {JobId} paused by the reputation guard: {Reason}")]
    private static partial void LogJobPaused(ILogger logger, Guid jobId, string reason);

    [LoggerMessage(LogLevel.Information, "Tenant {TenantId} resumed by an operator ({Jobs} jobs): {Note}")]
    private static partial void LogResumed(ILogger logger, Guid tenantId, int jobs, string note);
}

/// <summary>
/// The <c>data</c> of <c>reputation.warning</c> and <c>reputation.paused</c>: the new state, the scope of a pause
/// (bulk: the tenant's bulk jobs; all: transactional too; job: one job, <c>job_id</c>), why, the jobs paused, and the
/// rates of the two windows.
/// </summary>
public sealed record ReputationEvent(string TenantId, string State, string? Scope, string? Reason, string? JobId, List<string> PausedJobs,
    ReputationWindow? Window24h, ReputationWindow? Window7d);
