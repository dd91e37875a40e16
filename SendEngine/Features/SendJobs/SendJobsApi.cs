using System.Globalization;
using System.Security.Claims;
using System.Text.RegularExpressions;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Mail;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Extensions;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.SenderDomains;

namespace SendEngine.Features.SendJobs;

/// <summary>The tenant integration guide's section 4: /api/send-jobs.</summary>
public static partial class SendJobsApi
{
    public const int MaxPageSize = 500;

    public static IEndpointRouteBuilder MapSendJobsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/send-jobs").WithTags("Send jobs");
        api.MapPost("/", Create).RequireAuthorization(AuthExtensions.SendWrite).WithName("createSendJob")
            .WithSummary("Create a send job for a list; starts at scheduled_at (or now). Idempotency-Key makes retries safe.");
        api.MapGet("/", List).RequireAuthorization(AuthExtensions.SendRead).WithName("listSendJobs").WithSummary("The tenant's send jobs, newest first.");
        api.MapGet("/{id:guid}", Get).RequireAuthorization(AuthExtensions.SendRead).WithName("getSendJob").WithSummary("A send job's status and counts; body_html/body_text only with newsletter:content.read (or a client-credentials token).");
        api.MapPost("/{id:guid}/cancel", Cancel).RequireAuthorization(AuthExtensions.SendWrite).WithName("cancelSendJob")
            .WithSummary("Cancel a scheduled or running job; what was sent stays counted. 409 when already finished.");
        api.MapPost("/{id:guid}/resume", Resume).RequireAuthorization(AuthExtensions.SendWrite).WithName("resumeSendJob")
            .WithSummary("Resume a paused job now (after an outage, a fixed configuration or an operator's pause), or a failed job's remaining recipients. 409 otherwise.");
        api.MapGet("/{id:guid}/recipients", Recipients).RequireAuthorization(AuthExtensions.SendRead).WithName("listSendJobRecipients")
            .WithSummary("Per-recipient outcome, optionally filtered by status.");
        return app;
    }

    private static async Task<Results<Created<SendJobResponse>, Ok<SendJobResponse>, ValidationProblem, ProblemHttpResult>> Create(
        CreateSendJobRequest request, ClaimsPrincipal user, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        SendEngineDbContext db, NpgsqlDataSource dataSource, MemberCenterClient memberCenter, IBackgroundJobClient jobs, SenderDomainStore senderDomains,
        IOptions<SmtpOptions> smtp, IOptions<SenderDomainOptions> senderOptions, Reputation.ReputationStore reputation, TimeProvider clock,
        CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var v = new Validation();
        if (request.TenantId is { } t && !string.IsNullOrWhiteSpace(t))
        {
            if (!Guid.TryParse(t, out var bodyTenant))
            {
                v.Add("tenant_id", "The tenant_id must be a UUID.");
            }
            else if (bodyTenant != tenantId)
            {
                return TypedResults.Problem(statusCode: 403, title: "Forbidden", detail: "The tenant_id does not match the access token's tenant.");
            }
        }
        var listId = Guid.Empty;
        if (string.IsNullOrWhiteSpace(request.ListId))
        {
            v.Add("list_id", "The list_id field is required.");
        }
        else if (!Guid.TryParse(request.ListId, out listId))
        {
            v.Add("list_id", "The list_id must be a list id as returned by Member Center (a UUID).");
        }
        v.Required("subject", request.Subject);
        if (request.Subject?.Length > 998)
        {
            v.Add("subject", "The subject must be at most 998 characters.");
        }
        if (request.Name?.Length > 200)
        {
            v.Add("name", "The name must be at most 200 characters.");
        }
        ValidateBodies(v, request.BodyHtml, request.BodyText);
        var fromEmail = ValidateFrom(v, request.FromEmail, request.FromName);
        var fromName = string.IsNullOrWhiteSpace(request.FromName) ? null : request.FromName.Trim();
        var now = clock.GetUtcNow();
        var scheduledAt = now;
        if (request.ScheduledAt is { } s && !string.IsNullOrWhiteSpace(s))
        {
            if (!OffsetPattern().IsMatch(s) || !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at))
            {
                v.Add("scheduled_at", "The scheduled_at must be an ISO 8601 date-time with an offset, e.g. 2026-02-11T02:00:00Z.");
            }
            else if (at > now)
            {
                scheduledAt = at.ToUniversalTime();
            }
        }
        if (idempotencyKey?.Length > 200)
        {
            v.Add("idempotency_key", "The Idempotency-Key header must be at most 200 characters.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (idempotencyKey is { Length: > 0 } && await FindByKeyAsync(db, tenantId, idempotencyKey, ct) is { } existing)
        {
            return SameContent(existing, listId, request, fromEmail, fromName)
                ? TypedResults.Ok(await ToResponseAsync(db, existing, ct))
                : IdempotencyKeyReused();
        }
        if ((await reputation.PausedAsync(tenantId, ct)).Bulk)
        {
            // Refused rather than held: a held job would start by surprise when an operator resumes the tenant.
            return TypedResults.Problem(statusCode: 409, title: "Bulk sending paused",
                detail: "The tenant's bulk mail is paused by the reputation guard (see GET /api/reputation); a platform operator resumes it.",
                extensions: new Dictionary<string, object?> { ["code"] = "tenant_paused" });
        }
        // Bulk mail goes out From the job's from_email, else Smtp:FromAddress: its domain must be one the tenant verified
        // (docs/deliverability.md).
        var from = fromEmail ?? smtp.Value.FromAddress;
        if (senderOptions.Value.AllowUnverified != true && !await senderDomains.IsVerifiedAsync(tenantId, from, ct))
        {
            return SenderDomainNotVerified(from);
        }
        bool postalAddressMissing;
        try
        {
            if (await memberCenter.GetListAsync(tenantId, listId, ct) is not { } list)
            {
                return TypedResults.Problem(statusCode: 404, title: "List not found", detail: "The tenant has no list with this list_id.");
            }
            // Sent with a warning rather than refused: see docs/send-engine.md "Footer".
            postalAddressMissing = string.IsNullOrWhiteSpace(list.PostalAddress);
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, ct))
        {
            return TypedResults.Problem(statusCode: 503, title: "Member Center unavailable", detail: "The list could not be checked; retry later.");
        }

        var job = new SendJob
        {
            Id = Guid.CreateVersion7(now),
            TenantId = tenantId,
            ListId = listId,
            Name = request.Name?.Trim() is { Length: > 0 } n ? n : request.Subject!.Trim(),
            Subject = request.Subject!,
            BodyHtml = string.IsNullOrWhiteSpace(request.BodyHtml) ? null : request.BodyHtml,
            BodyText = string.IsNullOrWhiteSpace(request.BodyText) ? null : request.BodyText,
            Status = SendJobStatuses.Scheduled,
            ScheduledAt = scheduledAt,
            CreatedAt = now,
            IdempotencyKey = idempotencyKey is { Length: > 0 } ? idempotencyKey : null,
            FromEmail = fromEmail,
            FromName = fromEmail is null ? null : fromName,
            PostalAddressMissing = postalAddressMissing,
        };
        if (!await InsertAsync(dataSource, job, ct))
        {
            // A concurrent request with the same key won.
            var winner = await FindByKeyAsync(db, tenantId, job.IdempotencyKey!, ct);
            return SameContent(winner!, listId, request, fromEmail, fromName) ? TypedResults.Ok(await ToResponseAsync(db, winner!, ct)) : IdempotencyKeyReused();
        }

        // A crash between the insert and this line leaves a scheduled job without a Hangfire job; SendJobWatchdog picks it up.
        job.HangfireJobId = scheduledAt > now
            ? jobs.Schedule<SendJobRunner>(r => r.RunAsync(job.Id, CancellationToken.None), scheduledAt)
            : jobs.Enqueue<SendJobRunner>(r => r.RunAsync(job.Id, CancellationToken.None));
        await Sql.ExecuteAsync(dataSource, "UPDATE send_jobs SET hangfire_job_id = $2 WHERE id = $1", CancellationToken.None, job.Id, job.HangfireJobId);
        return TypedResults.Created($"/api/send-jobs/{job.Id}", await ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> Get(Guid id, ClaimsPrincipal user, SendEngineDbContext db,
        NpgsqlDataSource dataSource, JobCountsCache countsCache, CancellationToken ct)
    {
        var job = await db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == user.TenantId(), ct);
        if (job is null)
        {
            return JobNotFound();
        }
        var counts = await countsCache.GetAsync([job], ids => CountsAsync(db, ids, ct));
        var events = Retention.RetentionSweeper.ReadEventCounts(job.ArchivedEventCounts)
            ?? await countsCache.GetEventsAsync(job, () => EmailEvents.EmailEventsApi.JobCountsAsync(dataSource, id, ct));
        // Bodies only for callers that may read content (a viewer sees counts and statuses, never the message).
        var content = user.CanReadContent();
        return TypedResults.Ok(ToResponse(job, counts[job.Id]) with
        {
            Events = events,
            BodyHtml = content ? job.BodyHtml : null,
            BodyText = content ? job.BodyText : null,
        });
    }

    private static async Task<Results<Ok<SendJobPage>, ValidationProblem>> List(
        Guid? after, int? limit, ClaimsPrincipal user, SendEngineDbContext db, JobCountsCache countsCache, CancellationToken ct)
    {
        var size = limit ?? 50;
        if (size is < 1 or > MaxPageSize)
        {
            return TypedResults.ValidationProblem(new Validation().Add("limit", $"The limit must be between 1 and {MaxPageSize}.").Errors);
        }
        var tenantId = user.TenantId();
        // Ids are UUIDv7, so id order is creation order.
        var query = db.SendJobs.AsNoTracking().Where(j => j.TenantId == tenantId);
        if (after is { } cursor)
        {
            query = query.Where(j => j.Id.CompareTo(cursor) < 0);
        }
        var page = await query.OrderByDescending(j => j.Id).Take(size).ToListAsync(ct);
        var counts = await countsCache.GetAsync(page, ids => CountsAsync(db, ids, ct));
        var items = page.Select(j => ToResponse(j, counts[j.Id])).ToList();
        return TypedResults.Ok(new SendJobPage(items, page.Count == size ? page[^1].Id.ToString() : null));
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> Cancel(
        Guid id, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, IBackgroundJobClient jobs, IOperationLog log, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var before = await db.SendJobs.AsNoTracking().Where(j => j.Id == id && j.TenantId == tenantId).Select(j => j.Status).FirstOrDefaultAsync(ct);
        // Runners see the status within a poll interval and stop; rows not yet claimed are cancelled with it.
        var cancelled = await store.CancelAsync(tenantId, id, ct);
        var job = await db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenantId, ct);
        if (job is null)
        {
            return JobNotFound();
        }
        if (!cancelled)
        {
            return TypedResults.Problem(statusCode: 409, title: "Send job already finished",
                detail: $"The job is {job.Status}; only scheduled, queued, sending or paused jobs can be cancelled.");
        }
        if (job.HangfireJobId is { } hangfireId && job.StartedAt is null)
        {
            jobs.Delete(hangfireId);
        }
        log.Describe(new { status = before }, new { status = job.Status, cancelled_at = job.CancelledAt });
        return TypedResults.Ok(await ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> Resume(
        Guid id, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, IBackgroundJobClient jobs, IOperationLog log, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var job = await db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenantId, ct);
        if (job is null)
        {
            return JobNotFound();
        }
        if (job is { Status: SendJobStatuses.Paused, PausedBy: not null })
        {
            return TypedResults.Problem(statusCode: 409, title: "Send job paused by the reputation guard",
                detail: (job.PausedReason ?? "Paused by the reputation guard.") + " Only a platform operator can resume it.");
        }
        if (!await store.ResumeAsync(id, byOperator: true, ct))
        {
            return TypedResults.Problem(statusCode: 409, title: "Send job not paused",
                detail: $"The job is {job.Status}; only paused or failed jobs can be resumed.");
        }
        var before = job.Status;
        job = await db.SendJobs.AsNoTracking().FirstAsync(j => j.Id == id, ct);
        // Paused before its time, which is still ahead: its Hangfire schedule still stands.
        if (job.Status != SendJobStatuses.Scheduled)
        {
            jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        }
        log.Describe(new { status = before }, new { status = job.Status });
        return TypedResults.Ok(await ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<SendJobRecipientPage>, ValidationProblem, ProblemHttpResult>> Recipients(
        Guid id, string? status, long? after, int? limit, ClaimsPrincipal user, SendEngineDbContext db, CancellationToken ct)
    {
        var v = new Validation();
        var size = limit ?? 100;
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        if (status is { Length: > 0 } && !RecipientStatuses.All.Contains(status))
        {
            v.Add("status", $"The status must be one of: {string.Join(", ", RecipientStatuses.All)}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var tenantId = user.TenantId();
        if (!await db.SendJobs.AnyAsync(j => j.Id == id && j.TenantId == tenantId, ct))
        {
            return JobNotFound();
        }
        var query = db.Recipients.AsNoTracking().Where(r => r.JobId == id && r.Id > (after ?? 0));
        if (status is { Length: > 0 })
        {
            query = query.Where(r => r.Status == status);
        }
        var rows = await query.OrderBy(r => r.Id).Take(size).ToListAsync(ct);
        // A row's Message-ID is chosen by the snapshot; it is the message's only once an attempt started.
        var items = rows.Select(r => new SendJobRecipientResponse(r.Email, r.Status, r.Attempts, r.Attempts > 0 ? r.MessageId : null, r.Detail, r.SentAt, r.UpdatedAt,
            r.Id, r.ResolvedBy, r.ResolvedAt, r.ResolutionNote)).ToList();
        return TypedResults.Ok(new SendJobRecipientPage(items, rows.Count == size ? rows[^1].Id.ToString(CultureInfo.InvariantCulture) : null));
    }

    /// <summary>
    /// Whether a retried create carries the job's content. scheduled_at is left out: "now" (absent or past) resolves to
    /// a different instant on every retry.
    /// </summary>
    private static bool SameContent(SendJob job, Guid listId, CreateSendJobRequest request, string? fromEmail, string? fromName) =>
        job.ListId == listId
        && job.FromEmail == fromEmail
        && job.FromName == (fromEmail is null ? null : fromName)
        && job.Subject == request.Subject
        && job.BodyHtml == (string.IsNullOrWhiteSpace(request.BodyHtml) ? null : request.BodyHtml)
        && job.BodyText == (string.IsNullOrWhiteSpace(request.BodyText) ? null : request.BodyText)
        && (request.Name?.Trim() is not { Length: > 0 } name || job.Name == name);

    // Stripe-style: the same key with another request is the caller's bug, never a silent second meaning.
    private static ProblemHttpResult IdempotencyKeyReused() => TypedResults.Problem(statusCode: 422, title: "Idempotency-Key reused",
        detail: "This Idempotency-Key was already used for a send job with different content; use a new key for a new job.");

    /// <summary>
    /// Inserts the new job; false when another job of the tenant already has its Idempotency-Key. Plain SQL rather than
    /// EF Core's SaveChanges: the job's start waits for this insert, and a fresh process spent 0.6–0.9 s of a busy
    /// machine compiling EF's update pipeline on its first POST (docs/performance.md, first message).
    /// </summary>
    private static async Task<bool> InsertAsync(NpgsqlDataSource dataSource, SendJob job, CancellationToken ct) =>
        await Sql.ExecuteAsync(dataSource, """
            INSERT INTO send_jobs (id, tenant_id, list_id, name, subject, body_html, body_text, status, scheduled_at, created_at,
                idempotency_key, from_email, from_name, list_checked, postal_address_missing)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, false, $14)
            ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            """, ct, job.Id, job.TenantId, job.ListId, job.Name, job.Subject, (object?)job.BodyHtml ?? DBNull.Value,
            (object?)job.BodyText ?? DBNull.Value, job.Status, job.ScheduledAt, job.CreatedAt, (object?)job.IdempotencyKey ?? DBNull.Value,
            (object?)job.FromEmail ?? DBNull.Value, (object?)job.FromName ?? DBNull.Value, job.PostalAddressMissing) == 1;

    private static Task<SendJob?> FindByKeyAsync(SendEngineDbContext db, Guid tenantId, string key, CancellationToken ct) =>
        db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.TenantId == tenantId && j.IdempotencyKey == key, ct);

    internal static async Task<SendJobResponse> ToResponseAsync(SendEngineDbContext db, SendJob job, CancellationToken ct)
    {
        var counts = await CountsAsync(db, [job.Id], ct);
        return ToResponse(job, counts.GetValueOrDefault(job.Id) ?? []);
    }

    internal static async Task<Dictionary<Guid, Dictionary<string, int>>> CountsAsync(SendEngineDbContext db, Guid[] jobIds, CancellationToken ct)
    {
        var rows = await db.Recipients.Where(r => jobIds.Contains(r.JobId))
            .GroupBy(r => new { r.JobId, r.Status })
            .Select(g => new { g.Key.JobId, g.Key.Status, Count = g.Count() })
            .ToListAsync(ct);
        return rows.GroupBy(r => r.JobId).ToDictionary(g => g.Key, g => g.ToDictionary(r => r.Status, r => r.Count));
    }

    internal static SendJobResponse ToResponse(SendJob j, Dictionary<string, int> c)
    {
        // An archived job's recipient rows are gone; its counts were kept on the job when they were deleted.
        c = Retention.RetentionSweeper.ReadCounts(j.ArchivedCounts) ?? c;
        int N(string s) => c.GetValueOrDefault(s);
        var counts = new SendJobCounts(
            Total: c.Values.Sum(),
            Sent: N(RecipientStatuses.Sent) + N(RecipientStatuses.Delivered),
            Failed: N(RecipientStatuses.Failed),
            Suppressed: N(RecipientStatuses.Suppressed),
            Bounced: N(RecipientStatuses.Bounced),
            Cancelled: N(RecipientStatuses.Cancelled),
            Remaining: N(RecipientStatuses.Pending) + N(RecipientStatuses.Sending),
            Delivered: N(RecipientStatuses.Delivered),
            Unknown: N(RecipientStatuses.Unknown));
        return new SendJobResponse(j.Id.ToString(), j.TenantId.ToString(), j.ListId.ToString(), j.Name, j.Subject, j.Status, counts,
            j.ScheduledAt, j.CreatedAt, j.StartedAt, j.FinishedAt, j.CancelledAt, j.LastError, PausedReason: j.PausedReason, ResumeAt: j.ResumeAt,
            ThrottledUntil: j.Status == SendJobStatuses.Sending ? j.ThrottledUntil : null, FromEmail: j.FromEmail, FromName: j.FromName,
            Warnings: j.PostalAddressMissing ? [PostalAddressMissing] : []);
    }

    private static readonly SendJobWarning PostalAddressMissing = new(SendJobWarningCodes.PostalAddressMissing,
        "The tenant's branding has no postal address, so this job's mail goes out without one; CAN-SPAM requires it in bulk mail. "
        + "Set it in Member Center (PUT /api/branding, postal_address): runs that start afterwards add it to the footer.");

    /// <summary>The 422 of a job (or test send) from a domain that is not a verified sender domain of the tenant.</summary>
    internal static ProblemHttpResult SenderDomainNotVerified(string from)
    {
        var domain = SenderDomainStore.DomainOf(from) ?? from;
        return TypedResults.Problem(statusCode: 422, title: "Sender domain not verified", type: "urn:newsletter:problem:sender-domain-not-verified",
            detail: $"The mail would be sent from {from}; the domain {domain} is not a verified sender domain of this tenant. Register it "
                + "(POST /api/sender-domains), publish the DNS records it lists, and verify it (POST /api/sender-domains/{domain}/verify).",
            extensions: new Dictionary<string, object?> { ["domain"] = domain });
    }

    internal static ProblemHttpResult JobNotFound() => TypedResults.Problem(statusCode: 404, title: "Send job not found");

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|z|[+-]\d{2}:?\d{2})$")]
    private static partial Regex OffsetPattern();

    private const int MaxBodyLength = 2 * 1024 * 1024;

    /// <summary>
    /// The optional from_email/from_name of a job (and of the compose preview/test send): one line each, an address
    /// with a domain. Returns the normalised address, or null when none was given. Whether the domain is verified is
    /// checked by the caller (a 422 naming the domain, not a field error).
    /// </summary>
    internal static string? ValidateFrom(Validation v, string? fromEmail, string? fromName)
    {
        if (fromName is not null && (fromName.Length > 256 || fromName.AsSpan().IndexOfAny('\r', '\n') >= 0 || fromName.Contains('\0')))
        {
            v.Add("from_name", "The from_name must be one line of at most 256 characters.");
        }
        if (string.IsNullOrWhiteSpace(fromEmail))
        {
            if (!string.IsNullOrWhiteSpace(fromName))
            {
                v.Add("from_name", "The from_name needs a from_email.");
            }
            return null;
        }
        if (!EmailAddresses.TryNormalize(fromEmail, out var address, out _, out var error))
        {
            v.Add("from_email", error);
            return null;
        }
        return address;
    }

    /// <summary>The bodies' rules, shared by job creation and the compose preview/test send (same message, same limits).</summary>
    internal static void ValidateBodies(Validation v, string? bodyHtml, string? bodyText)
    {
        if (string.IsNullOrWhiteSpace(bodyHtml) && string.IsNullOrWhiteSpace(bodyText))
        {
            v.Add("body_html", "Give body_html, body_text or both.");
            v.Add("body_text", "Give body_html, body_text or both.");
        }
        if (bodyHtml?.Length > MaxBodyLength)
        {
            v.Add("body_html", "The body_html must be at most 2 MiB.");
        }
        if (bodyText?.Length > MaxBodyLength)
        {
            v.Add("body_text", "The body_text must be at most 2 MiB.");
        }
    }
}
