using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Extensions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;

namespace MemberCenter.Features.Lists;

/// <summary>A tenant's own lists (tenant_api clients, newsletter:lists.* scopes). The platform admin API can create them too.</summary>
public static class ListsApi
{
    public static IEndpointRouteBuilder MapListsApi(this IEndpointRouteBuilder app)
    {
        var lists = app.MapGroup("/api/lists").WithTags("Lists");
        lists.MapGet("/", ListLists).RequireAuthorization(Policies.ListsRead).WithName("listLists").WithSummary("The caller's lists, oldest first.");
        lists.MapGet("/{listId:guid}", GetList).RequireAuthorization(Policies.ListsRead)
            .WithName("getList").WithSummary("One of the caller's lists.");
        lists.MapPost("/", CreateList).RequireAuthorization(Policies.ListsWrite).WithName("createList").WithSummary("Create a list; answers its list_id.");
        return app;
    }

    private static async Task<Ok<List<MailingListResponse>>> ListLists(ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var lists = await db.MailingLists.AsNoTracking().Where(l => l.TenantId == tenantId).OrderBy(l => l.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(lists.Select(ToResponse).ToList());
    }

    private static async Task<Results<Ok<MailingListResponse>, ProblemHttpResult>> GetList(Guid listId, ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var list = await db.MailingLists.AsNoTracking().FirstOrDefaultAsync(l => l.Id == listId && l.TenantId == tenantId, ct);
        return list is null ? Subscriptions.SubscriptionsApi.ListNotFound() : TypedResults.Ok(ToResponse(list));
    }

    private static async Task<Results<Created<MailingListResponse>, ValidationProblem>> CreateList(CreateListRequest request, ClaimsPrincipal user, MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("name", request.Name).MaxLength("name", request.Name, 200);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var list = new MailingList { Id = Guid.CreateVersion7(), TenantId = user.TenantId(), Name = request.Name!.Trim(), CreatedAt = clock.GetUtcNow() };
        db.MailingLists.Add(list);
        await db.SaveChangesAsync(ct);
        log.Describe(null, ToResponse(list));
        return TypedResults.Created($"/api/lists/{list.Id}", ToResponse(list));
    }

    internal static MailingListResponse ToResponse(MailingList l) => new(l.Id.ToString(), l.TenantId.ToString(), l.Name, l.CreatedAt);
}
