using System.Security.Claims;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Extensions;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// An operator's hands on a job (seed 002's jobs trigger/retry/resolve): pause, trigger, retry-failed and resolve. Each
/// state change is <see cref="RecipientStore"/>'s; these routes only check, start runners and answer the job.
/// </summary>
public static class SendJobOperationsApi
{
    public const int MaxResolveIds = 1000;

    public static IEndpointRouteBuilder MapSendJobOperationsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/send-jobs").WithTags("Send jobs").RequireAuthorization(AuthExtensions.SendWrite);
        api.MapPost("/{id:guid}/pause", Pause).WithName("pauseSendJob")
            .WithSummary("Pause a scheduled or running job for an operator: no new claims, messages in flight finish. resume goes on. 409 otherwise.");
        api.MapPost("/{id:guid}/trigger", Trigger).WithName("triggerSendJob")
            .WithSummary("Start a scheduled job now instead of at scheduled_at. 409 unless scheduled.");
        api.MapPost("/{id:guid}/retry-failed", RetryFailed).WithName("retryFailedSendJobRecipients")
            .WithSummary("Put every failed recipient back to pending and run the same job again (never sent or unknown ones). 409 when the job is not completed, failed, sending or paused, or has no failed recipient.");
        api.MapPost("/{id:guid}/recipients/resolve", Resolve).WithName("resolveSendJobRecipients")
            .WithSummary("Acknowledge unknown outcomes as sent or failed (recipient_ids or all_unknown), recording who and when. 409 when a recipient is not unknown.");
        return app;
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> Pause(
        Guid id, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var paused = await store.PauseByOperatorAsync(tenantId, id, ct);
        var job = await db.SendJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenantId, ct);
        if (job is null)
        {
            return SendJobsApi.JobNotFound();
        }
        if (!paused)
        {
            return Conflict("Send job cannot be paused", $"The job is {job.Status}; only scheduled, queued or sending jobs can be paused.");
        }
        return TypedResults.Ok(await SendJobsApi.ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> Trigger(
        Guid id, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, IBackgroundJobClient jobs, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var (triggered, oldHangfireId) = await store.TriggerAsync(tenantId, id, ct);
        var job = await db.SendJobs.FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenantId, ct);
        if (job is null)
        {
            return SendJobsApi.JobNotFound();
        }
        if (!triggered)
        {
            return Conflict("Send job not scheduled", $"The job is {job.Status}; only a scheduled job can be started now.");
        }
        // The old schedule would only find the job started; deleting it keeps Hangfire's list honest. A crash in
        // between leaves a scheduled job due now without a Hangfire job: the watchdog starts it.
        if (oldHangfireId is not null)
        {
            jobs.Delete(oldHangfireId);
        }
        job.HangfireJobId = jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        await db.SaveChangesAsync(CancellationToken.None);
        return TypedResults.Ok(await SendJobsApi.ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<SendJobResponse>, ProblemHttpResult>> RetryFailed(
        Guid id, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, JobCountsCache counts, IBackgroundJobClient jobs, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var (outcome, status, _, needsRunner) = await store.RetryFailedAsync(tenantId, id, ct);
        switch (outcome)
        {
            case RecipientStore.RetryOutcome.NotFound:
                return SendJobsApi.JobNotFound();
            case RecipientStore.RetryOutcome.WrongState:
                return Conflict("Send job cannot retry", $"The job is {status}; failed recipients are retried for completed, failed, sending or paused jobs.");
            case RecipientStore.RetryOutcome.NothingToRetry:
                return Conflict("No failed recipients", "The job has no recipient in status failed.");
        }
        counts.Invalidate([id]);
        if (needsRunner)
        {
            jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        }
        var job = await db.SendJobs.AsNoTracking().FirstAsync(j => j.Id == id, ct);
        return TypedResults.Ok(await SendJobsApi.ToResponseAsync(db, job, ct));
    }

    private static async Task<Results<Ok<ResolveRecipientsResponse>, ValidationProblem, ProblemHttpResult>> Resolve(
        Guid id, ResolveRecipientsRequest request, ClaimsPrincipal user, SendEngineDbContext db, RecipientStore store, JobCountsCache counts, CancellationToken ct)
    {
        var v = new Validation();
        var all = request.AllUnknown == true;
        var ids = request.RecipientIds?.ToArray();
        if (all == ids is { Length: > 0 })
        {
            v.Add("recipient_ids", "Give recipient_ids or all_unknown: true (one of them).");
        }
        if (ids?.Length > MaxResolveIds)
        {
            v.Add("recipient_ids", $"At most {MaxResolveIds} recipient_ids per request; use all_unknown for more.");
        }
        if (request.Resolution is not (RecipientStatuses.Sent or RecipientStatuses.Failed))
        {
            v.Add("resolution", "The resolution must be sent or failed.");
        }
        v.MaxLength("note", request.Note, 500);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var (outcome, resolved, notUnknown) = await store.ResolveUnknownAsync(user.TenantId(), id, all ? null : ids, request.Resolution!,
            user.Actor(), string.IsNullOrWhiteSpace(request.Note) ? null : request.Note.Trim(), ct);
        switch (outcome)
        {
            case RecipientStore.ResolveOutcome.NotFound:
                return SendJobsApi.JobNotFound();
            case RecipientStore.ResolveOutcome.NotUnknown:
                return Conflict("Recipients not unknown", all
                    ? "The job has no recipient whose outcome is unknown."
                    : "Only recipients whose outcome is unknown can be resolved; not unknown (or not this job's): "
                        + string.Join(", ", notUnknown.Take(20)) + (notUnknown.Length > 20 ? ", …" : "") + ". Nothing was changed.");
        }
        counts.Invalidate([id]);
        var job = await db.SendJobs.AsNoTracking().FirstAsync(j => j.Id == id, ct);
        return TypedResults.Ok(new ResolveRecipientsResponse(resolved, await SendJobsApi.ToResponseAsync(db, job, ct)));
    }

    private static ProblemHttpResult Conflict(string title, string detail) => TypedResults.Problem(statusCode: 409, title: title, detail: detail);
}
