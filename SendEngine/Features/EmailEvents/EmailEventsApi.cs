using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults;
using Npgsql;
using SendEngine.Data;
using SendEngine.Extensions;
using SendEngine.Features.SendJobs;
using SendEngine.Features.Suppressions;

namespace SendEngine.Features.EmailEvents;

/// <summary>Tenants' view of ESP events: per job, per address, and per-address statistics (scope newsletter:send.read).</summary>
public static class EmailEventsApi
{
    public const int MaxPageSize = 500;

    /// <summary>Messages of the tenant ($1) sent to the address ($2, normalised); public for the test that EXPLAINs it.</summary>
    public const string SentToAddressSql = $"""
        SELECT count(*) FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
        WHERE lower(r.email) = $2 AND j.tenant_id = $1 AND r.status IN ('{RecipientStatuses.Sent}', '{RecipientStatuses.Delivered}', '{RecipientStatuses.Bounced}')
        """;

    /// <summary>Transactional tasks of the tenant ($1) the transport accepted for the address ($2, its key).</summary>
    public const string TransactionalSentToAddressSql = $"""
        SELECT count(*) FROM transactional_tasks
        WHERE tenant_id = $1 AND email_key = $2 AND status IN ('{EmailTaskStatuses.Sent}', '{EmailTaskStatuses.Delivered}', '{EmailTaskStatuses.Bounced}')
        """;

    public static IEndpointRouteBuilder MapEmailEventsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/send-jobs/{id:guid}/events", JobEvents).RequireAuthorization(AuthExtensions.SendRead).WithTags("Send jobs")
            .WithSummary("ESP events (delivered, bounces, opens, clicks…) of a send job, oldest first.");
        var addresses = app.MapGroup("/api/email-addresses/{email}").WithTags("Email events").RequireAuthorization(AuthExtensions.SendRead);
        addresses.MapGet("/events", AddressEvents).WithSummary("The tenant's ESP events for one address, oldest first.");
        addresses.MapGet("/statistics", AddressStatistics).WithSummary("Sent, delivered, opened, clicked, bounced and last activity for one address.");
        return app;
    }

    private static async Task<Results<Ok<EmailEventPage>, ValidationProblem, ProblemHttpResult>> JobEvents(
        Guid id, long? after, int? limit, string? type, ClaimsPrincipal user, SendEngineDbContext db, CancellationToken ct)
    {
        if (Validate(limit) is { } invalid)
        {
            return invalid;
        }
        var tenantId = user.TenantId();
        if (!await db.SendJobs.AnyAsync(j => j.Id == id && j.TenantId == tenantId, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "Send job not found");
        }
        var query = db.Set<EmailEvent>().AsNoTracking().Where(e => e.JobId == id && e.Id > (after ?? 0));
        if (type is { Length: > 0 })
        {
            query = query.Where(e => e.EventType == type);
        }
        return TypedResults.Ok(await PageAsync(query, limit ?? 100, ct));
    }

    private static async Task<Results<Ok<EmailEventPage>, ValidationProblem>> AddressEvents(
        string email, long? after, int? limit, ClaimsPrincipal user, SendEngineDbContext db, CancellationToken ct)
    {
        if (Validate(limit) is { } invalid)
        {
            return invalid;
        }
        var tenantId = user.TenantId();
        var address = Suppression.Normalize(email);
        var query = db.Set<EmailEvent>().AsNoTracking().Where(e => e.TenantId == tenantId && e.Email == address && e.Id > (after ?? 0));
        return TypedResults.Ok(await PageAsync(query, limit ?? 100, ct));
    }

    private static async Task<Results<Ok<EmailStatisticsResponse>, ProblemHttpResult>> AddressStatistics(
        string email, ClaimsPrincipal user, SendEngineDbContext db, NpgsqlDataSource dataSource, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var address = Suppression.Normalize(email);
        var stats = await db.Set<EmailStatistic>().AsNoTracking().FirstOrDefaultAsync(s => s.TenantId == tenantId && s.Email == address, ct);
        // "sent" comes from the deliveries themselves (the send path writes no statistics), plus the deliveries whose
        // rows retention has deleted. The expression index ix_send_job_recipients_lower_email finds the address's rows
        // directly (docs/send-engine.md "Retention"), never the tenant's other recipients.
        long sent = stats?.TotalSentArchived ?? 0;
        sent += await Sql.ScalarAsync<long>(dataSource, SentToAddressSql, ct, tenantId, address);
        sent += await Sql.ScalarAsync<long>(dataSource, TransactionalSentToAddressSql, ct, tenantId, address);
        if (stats is null && sent == 0)
        {
            return TypedResults.Problem(statusCode: 404, title: "Address not found", detail: "No message or event for this address in this tenant.");
        }
        return TypedResults.Ok(new EmailStatisticsResponse(address, (int)sent, stats?.TotalDelivered ?? 0, stats?.TotalOpened ?? 0,
            stats?.TotalClicked ?? 0, stats?.TotalBounced ?? 0, stats?.TotalSoftBounced ?? 0, stats?.TotalComplaints ?? 0,
            stats?.TotalUnsubscribes ?? 0, stats?.LastActivity));
    }

    /// <summary>Counters of one job from its events (duplicates are never stored, so counting rows is exact).</summary>
    public static async Task<SendJobEventCounts> JobCountsAsync(NpgsqlDataSource db, Guid jobId, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, """
            SELECT
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'delivered'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'open'),
              count(*) FILTER (WHERE event_type = 'open'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'click'),
              count(*) FILTER (WHERE event_type = 'click'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'hard_bounce' OR outcome = 'applied_as_hard_bounce'),
              count(*) FILTER (WHERE event_type = 'soft_bounce'),
              count(*) FILTER (WHERE event_type = 'deferred'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'rejected'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'spamreport'),
              count(DISTINCT recipient_id) FILTER (WHERE event_type = 'unsubscribe')
            FROM email_events WHERE job_id = $1 AND processed_at IS NOT NULL
            """, jobId);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        int I(int i) => (int)r.GetInt64(i);
        return new SendJobEventCounts(I(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10));
    }

    private static ValidationProblem? Validate(int? limit) =>
        limit is < 1 or > MaxPageSize
            ? TypedResults.ValidationProblem(new Validation().Add("limit", $"The limit must be between 1 and {MaxPageSize}.").Errors)
            : null;

    private static async Task<EmailEventPage> PageAsync(IQueryable<EmailEvent> query, int size, CancellationToken ct)
    {
        var rows = await query.OrderBy(e => e.Id).Take(size).ToListAsync(ct);
        var items = rows.Select(e => new EmailEventResponse(e.Id, e.EventType, e.RawEventType, e.Email, e.MessageId, e.JobId?.ToString(),
            e.OccurredAt, e.ReceivedAt, e.Link, e.Reason, e.BounceType, e.Outcome, e.ProcessedAt)).ToList();
        return new EmailEventPage(items, rows.Count == size ? rows[^1].Id.ToString(CultureInfo.InvariantCulture) : null);
    }
}
