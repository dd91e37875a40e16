using System.Security.Claims;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Data;
using SendEngine.Delivery;
using SendEngine.Extensions;

namespace SendEngine.Features.Reputation;

/// <summary><c>scope</c>: <c>bulk</c> (bulk jobs only, the default) or <c>all</c> (transactional mail too).</summary>
public sealed record ReputationPauseRequest(string? Scope, string? Note);

/// <summary>The note is required: it is what the operation log keeps of why the tenant may send again.</summary>
public sealed record ReputationResumeRequest(string? Note);

/// <summary>
/// A tenant's own limits (null: unlimited), or <c>use_platform_defaults: true</c> to follow SendingLimits again.
/// </summary>
public sealed record SendingLimitsRequest(int? MessagesPerHour, int? MessagesPerDay, bool? UsePlatformDefaults);

/// <summary>
/// The reputation guard's API: the tenant's own standing (GET /api/reputation, newsletter:send.read) and, for platform
/// operators, any tenant's, its pause (bulk or all), its resume with a note (operation log) and its sending limits.
/// </summary>
public static class ReputationApi
{
    private const int MaxNote = 1000;

    public static IEndpointRouteBuilder MapReputationApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/reputation", (ClaimsPrincipal user, ReputationStore store, CancellationToken ct) => Get(user.TenantId(), store, ct))
            .WithTags("Reputation").RequireAuthorization(AuthExtensions.SendRead).WithName("getReputation")
            .WithSummary("The caller's bounce and complaint rates (24 h, 7 days), the thresholds, its state (ok, warning, paused) and why, and its sending limits.");

        var admin = app.MapGroup("/admin/tenants/{tenantId:guid}").WithTags("Admin").RequireAuthorization(AuthExtensions.Admin);
        admin.MapGet("/reputation", AdminGet).WithName("adminGetReputation")
            .WithSummary("A tenant's reputation: rates, thresholds, state and why, limits. 404 when Send Engine has nothing of the tenant.");
        admin.MapPost("/reputation/pause", Pause).WithName("adminPauseReputation")
            .WithSummary("Pause a tenant's bulk mail (scope bulk) or all of it (scope all: transactional too), with a note.");
        admin.MapPost("/reputation/resume", Resume).WithName("adminResumeReputation")
            .WithSummary("Resume a paused tenant with a required note: its paused jobs go on, and only mail after the resume counts toward its rates.");
        admin.MapPut("/sending-limits", SetLimits).WithName("adminSetSendingLimits")
            .WithSummary("Set a tenant's messages per hour and per day (null: unlimited), or use_platform_defaults.");
        return app;
    }

    private static async Task<Ok<ReputationReport>> Get(Guid tenantId, ReputationStore store, CancellationToken ct) =>
        TypedResults.Ok(await store.ReportAsync(tenantId, ct));

    private static async Task<Results<Ok<ReputationReport>, ProblemHttpResult>> AdminGet(Guid tenantId, ReputationStore store, Npgsql.NpgsqlDataSource db, CancellationToken ct)
    {
        if (!await KnownAsync(db, tenantId, ct))
        {
            return NotFound();
        }
        return TypedResults.Ok(await store.ReportAsync(tenantId, ct));
    }

    /// <summary>Member Center owns tenants; Send Engine knows one that has a reputation row, counts or jobs.</summary>
    private static async Task<bool> KnownAsync(Npgsql.NpgsqlDataSource db, Guid tenantId, CancellationToken ct) =>
        await Sql.ScalarAsync<bool>(db, """
            SELECT EXISTS (SELECT 1 FROM tenant_reputation WHERE tenant_id = $1) OR EXISTS (SELECT 1 FROM reputation_counts WHERE tenant_id = $1)
                OR EXISTS (SELECT 1 FROM send_jobs WHERE tenant_id = $1) OR EXISTS (SELECT 1 FROM transactional_tasks WHERE tenant_id = $1)
            """, ct, tenantId);

    private static ProblemHttpResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Tenant not found",
        detail: "Send Engine has no jobs, mail or reputation of this tenant.");

    private static async Task<Results<Ok<ReputationReport>, ValidationProblem>> Pause(
        Guid tenantId, ReputationPauseRequest request, ReputationStore store, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation();
        var scope = string.IsNullOrWhiteSpace(request.Scope) ? "bulk" : request.Scope.Trim();
        if (scope is not ("bulk" or "all"))
        {
            v.Add("scope", "The scope must be bulk or all.");
        }
        v.MaxLength("note", request.Note, MaxNote);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var change = await store.PauseByOperatorAsync(tenantId, scope == "all", string.IsNullOrWhiteSpace(request.Note) ? null : request.Note.Trim(), ct);
        log.ForTenant(tenantId);
        log.Describe(Summary(change.Before), Summary(change.After) with { Jobs = change.Jobs.Count });
        return TypedResults.Ok(change.After);
    }

    private static async Task<Results<Ok<ReputationReport>, ValidationProblem, ProblemHttpResult>> Resume(
        Guid tenantId, ReputationResumeRequest request, ReputationStore store, IBackgroundJobClient jobs, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("note", request.Note).MaxLength("note", request.Note, MaxNote);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var before = await store.ReportAsync(tenantId, ct);
        if (!before.BulkPaused && !before.TransactionalPaused && !await store.HasGuardedJobsAsync(tenantId, ct))
        {
            return TypedResults.Problem(statusCode: 409, title: "Tenant not paused", detail: $"The tenant's state is {before.State}; nothing is paused.");
        }
        var change = await store.ResumeByOperatorAsync(tenantId, request.Note!.Trim(), ct);
        foreach (var id in change!.Jobs)
        {
            jobs.Enqueue<SendJobRunner>(r => r.RunAsync(id, CancellationToken.None));
        }
        log.ForTenant(tenantId);
        log.Describe(Summary(change.Before), Summary(change.After) with { Jobs = change.Jobs.Count });
        return TypedResults.Ok(change.After);
    }

    private static async Task<Results<Ok<ReputationReport>, ValidationProblem>> SetLimits(
        Guid tenantId, SendingLimitsRequest request, ReputationStore store, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation();
        var platform = request.UsePlatformDefaults == true;
        if (platform && (request.MessagesPerHour is not null || request.MessagesPerDay is not null))
        {
            v.Add("use_platform_defaults", "Give either use_platform_defaults or the limits, not both.");
        }
        if (request.MessagesPerHour is < 1)
        {
            v.Add("messages_per_hour", "The hourly limit must be at least 1 (null: unlimited).");
        }
        if (request.MessagesPerDay is < 1)
        {
            v.Add("messages_per_day", "The daily limit must be at least 1 (null: unlimited).");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var before = await store.ReportAsync(tenantId, ct);
        var after = await store.SetLimitsAsync(tenantId, platform, request.MessagesPerHour, request.MessagesPerDay, ct);
        log.ForTenant(tenantId);
        log.Describe(before.Limits, after.Limits);
        return TypedResults.Ok(after);
    }

    private sealed record ChangeSummary(string State, string? Reason, bool BulkPaused, bool TransactionalPaused, string? Note, int? Jobs = null);

    private static ChangeSummary Summary(ReputationReport r) => new(r.State, r.Reason, r.BulkPaused, r.TransactionalPaused, r.Note);
}
