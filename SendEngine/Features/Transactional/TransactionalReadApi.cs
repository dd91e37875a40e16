using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults;
using Npgsql;
using SendEngine.Extensions;

namespace SendEngine.Features.Transactional;

/// <summary>
/// The tenant's transactional tasks for people (the console) with an access token (newsletter:send.read), beside the
/// X-Pigeon-Api-Key routes of <see cref="TransactionalEmailApi"/>, whose queries these call. Errors are problem+json,
/// like every token route. The answers carry status, times, metadata and events, never the message itself.
/// </summary>
public static class TransactionalReadApi
{
    public static IEndpointRouteBuilder MapTransactionalReadApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/transactional").WithTags("Transactional email").RequireAuthorization(AuthExtensions.SendRead);
        api.MapGet("/requests", Search).WithName("searchTransactionalTasks")
            .WithSummary("The tenant's transactional tasks (one per recipient of a request), newest first, filtered by email, metadata.KEY=VALUE, from and to (created_at); after = next_cursor.");
        api.MapGet("/tasks/{task_id}", GetTask).WithName("getTransactionalTask")
            .WithSummary("One transactional task with its events (delivered, opened, clicked, bounced, complained).");
        return app;
    }

    private static async Task<Results<Ok<EmailTaskPage>, ValidationProblem>> Search(HttpContext http, ClaimsPrincipal user, NpgsqlDataSource db,
        IOptions<TransactionalOptions> options, CancellationToken ct)
    {
        var (errors, page) = await TransactionalEmailApi.SearchAsync(user.TenantId(), http.Request.Query, db, options.Value, ct);
        return errors is not null
            ? TypedResults.ValidationProblem(errors.ToDictionary(e => e.Key, e => new[] { e.Value }))
            : TypedResults.Ok(page!);
    }

    private static async Task<Results<Ok<EmailTaskResponse>, ProblemHttpResult>> GetTask(string task_id, ClaimsPrincipal user, NpgsqlDataSource db, CancellationToken ct) =>
        await TransactionalEmailApi.FindTaskAsync(user.TenantId(), task_id, db, ct) is { } task
            ? TypedResults.Ok(task)
            : TypedResults.Problem(statusCode: 404, title: "Task not found");
}
