using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Extensions;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace MemberCenter.Features.People;

/// <summary>
/// People of a tenant: memberships and invitations (scope newsletter:members, owners), the same for platform operators
/// under /admin, /admin/people, and /api/me for the console's tenant switcher.
/// </summary>
public static class MembersApi
{
    public static IEndpointRouteBuilder MapMembersApi(this IEndpointRouteBuilder app)
    {
        var members = app.MapGroup("/api/members").WithTags("Members").RequireAuthorization(Policies.Members);
        members.MapGet("/", (ClaimsPrincipal user, PeopleService people, CancellationToken ct) => ListMembers(user.TenantId(), people, ct))
            .WithName("listMembers").WithSummary("The tenant's people and their roles, oldest membership first.");
        // No POST here: adding someone directly by address would tell a tenant's owner whether that address has an
        // account. Everyone joins through an invitation (POST /api/invitations), which answers the same either way; a
        // person who has an account accepts it with their sign-in.
        members.MapPatch("/{userId:guid}", (Guid userId, UpdateMemberRequest request, ClaimsPrincipal user, PeopleService people, CancellationToken ct) =>
                ChangeRole(user.TenantId(), userId, request, people, ct))
            .WithName("updateMember").WithSummary("Change a member's role; the last owner cannot be demoted.");
        members.MapDelete("/{userId:guid}", (Guid userId, ClaimsPrincipal user, PeopleService people, CancellationToken ct) =>
                Remove(user.TenantId(), userId, people, ct))
            .WithName("removeMember").WithSummary("Remove a member from the tenant; the last owner cannot be removed.");

        var invitations = app.MapGroup("/api/invitations").WithTags("Members").RequireAuthorization(Policies.Members);
        invitations.MapGet("/", (ClaimsPrincipal user, PeopleService people, TimeProvider clock, CancellationToken ct) => ListInvitations(user.TenantId(), people, clock, ct))
            .WithName("listInvitations").WithSummary("The tenant's invitations (pending, accepted, expired), oldest first.");
        invitations.MapPost("/", (CreateInvitationRequest request, ClaimsPrincipal user, PeopleService people, TimeProvider clock, CancellationToken ct) =>
                Invite(user.TenantId(), request, Guid.TryParse(user.GetClaim(Claims.Subject), out var by) ? by : null, "/api/invitations", people, clock, ct))
            .WithName("createInvitation").WithSummary("Invite someone by e-mail with a role, whether or not they have an account (the answer is the same); the mail's link is valid for 7 days.");
        invitations.MapDelete("/{invitationId:guid}", (Guid invitationId, ClaimsPrincipal user, PeopleService people, CancellationToken ct) =>
                DeleteInvitation(user.TenantId(), invitationId, people, ct))
            .WithName("deleteInvitation").WithSummary("Withdraw an invitation: its link stops working.");

        app.MapGet("/api/me", Me).WithTags("Members").RequireAuthorization(Policies.Person)
            .WithName("getMe").WithSummary("The signed-in person (a console token): profile, the token's tenant and role, every tenant they can switch to.");

        var admin = app.MapGroup("/admin").WithTags("Admin").RequireAuthorization(Policies.Admin);
        admin.MapGet("/tenants/{tenantId:guid}/members", async Task<Results<Ok<List<MemberResponse>>, ProblemHttpResult>> (Guid tenantId, MemberCenterDbContext db, PeopleService people, CancellationToken ct) =>
                await db.Tenants.AnyAsync(t => t.Id == tenantId, ct) ? await ListMembers(tenantId, people, ct) : TenantNotFound())
            .WithName("adminListMembers").WithSummary("A tenant's people and their roles.");
        admin.MapPost("/tenants/{tenantId:guid}/members", async Task<Results<Created<MemberResponse>, Ok<MemberResponse>, ValidationProblem, ProblemHttpResult>> (
                    Guid tenantId, AdminAddMemberRequest request, MemberCenterDbContext db, PeopleService people, UserManager<Person> users, CancellationToken ct) =>
                await db.Tenants.AnyAsync(t => t.Id == tenantId, ct)
                    ? await AddMember(tenantId, request.UserId, request.Email, request.Role, $"/admin/tenants/{tenantId}/members", people, users, ct)
                    : TenantNotFound())
            .WithName("adminAddMember").WithSummary("Add a person (by user_id or e-mail) to a tenant with a role, e.g. its first owner.");
        admin.MapPatch("/tenants/{tenantId:guid}/members/{userId:guid}", (Guid tenantId, Guid userId, UpdateMemberRequest request, PeopleService people, CancellationToken ct) =>
                ChangeRole(tenantId, userId, request, people, ct))
            .WithName("adminUpdateMember").WithSummary("Change a member's role; the last owner cannot be demoted.");
        admin.MapDelete("/tenants/{tenantId:guid}/members/{userId:guid}", (Guid tenantId, Guid userId, PeopleService people, CancellationToken ct) =>
                Remove(tenantId, userId, people, ct))
            .WithName("adminRemoveMember").WithSummary("Remove a member from a tenant; the last owner cannot be removed.");
        admin.MapPost("/people", CreatePerson).WithName("createPerson")
            .WithSummary("Create a person account (platform_operator=true: a platform operator); a confirmation mail is sent.");
        admin.MapGet("/people", ListPeople).WithName("listPeople").WithSummary("Every person account, oldest first.");
        return app;
    }

    private static async Task<Ok<List<MemberResponse>>> ListMembers(Guid tenantId, PeopleService people, CancellationToken ct) =>
        TypedResults.Ok((await people.ListMembersAsync(tenantId, ct)).Select(ToResponse).ToList());

    private static async Task<Results<Created<MemberResponse>, Ok<MemberResponse>, ValidationProblem, ProblemHttpResult>> AddMember(
        Guid tenantId, string? userId, string? email, string? role, string location, PeopleService people, UserManager<Person> users, CancellationToken ct)
    {
        var v = new Validation();
        ValidateRole(v, role);
        if (string.IsNullOrWhiteSpace(email) && string.IsNullOrWhiteSpace(userId))
        {
            v.Add("email", "The email field is required.");
        }
        else if (userId is not null && !Guid.TryParse(userId, out _))
        {
            v.Add("user_id", "The user_id must be a UUID.");
        }
        v.MaxLength("email", email, 320);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var person = userId is not null ? await users.FindByIdAsync(userId) : await users.FindByEmailAsync(email!.Trim());
        if (person is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Person not found", detail: "No account has this address: send an invitation instead (POST /api/invitations).");
        }
        var (member, created) = await people.AddMemberAsync(tenantId, person, role!, ct);
        return created ? TypedResults.Created($"{location}/{person.Id}", ToResponse(member!)) : TypedResults.Ok(ToResponse(member!));
    }

    private static async Task<Results<Ok<MemberResponse>, ValidationProblem, ProblemHttpResult>> ChangeRole(Guid tenantId, Guid userId, UpdateMemberRequest request, PeopleService people, CancellationToken ct)
    {
        var v = new Validation();
        ValidateRole(v, request.Role);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        return await people.ChangeRoleAsync(tenantId, userId, request.Role!, ct) switch
        {
            MemberChange.NotFound => MemberNotFound(),
            MemberChange.LastOwner => LastOwner(),
            _ => TypedResults.Ok(ToResponse((await people.GetMemberAsync(tenantId, userId, ct))!)),
        };
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Remove(Guid tenantId, Guid userId, PeopleService people, CancellationToken ct) =>
        await people.RemoveMemberAsync(tenantId, userId, ct) switch
        {
            MemberChange.NotFound => MemberNotFound(),
            MemberChange.LastOwner => LastOwner(),
            _ => TypedResults.NoContent(),
        };

    private static async Task<Ok<List<InvitationResponse>>> ListInvitations(Guid tenantId, PeopleService people, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        return TypedResults.Ok((await people.ListInvitationsAsync(tenantId, ct)).Select(i => ToResponse(i, now)).ToList());
    }

    private static async Task<Results<Created<InvitationResponse>, ValidationProblem>> Invite(
        Guid tenantId, CreateInvitationRequest request, Guid? invitedBy, string location, PeopleService people, TimeProvider clock, CancellationToken ct)
    {
        var v = new Validation();
        ValidateRole(v, request.Role);
        if (!EmailAddress.TryParse(request.Email, out var email, out var error))
        {
            v.Add("email", error);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var invitation = await people.InviteAsync(tenantId, email, request.Role!, invitedBy, ct);
        return TypedResults.Created($"{location}/{invitation.Id}", ToResponse(invitation, clock.GetUtcNow()));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteInvitation(Guid tenantId, Guid invitationId, PeopleService people, CancellationToken ct) =>
        await people.DeleteInvitationAsync(tenantId, invitationId, ct) ? TypedResults.NoContent() : TypedResults.Problem(statusCode: 404, title: "Invitation not found");

    private static async Task<Results<Ok<MeResponse>, ProblemHttpResult>> Me(ClaimsPrincipal user, UserManager<Person> users, MemberCenterDbContext db, CancellationToken ct)
    {
        var person = user.GetClaim(Claims.Subject) is { } sub ? await users.FindByIdAsync(sub) : null;
        if (person is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Person not found");
        }
        var isOperator = await users.IsInRoleAsync(person, PlatformRoles.Operator);
        // Operators may switch to every tenant; they are listed with the operator role where they hold no membership.
        var memberships = isOperator
            ? await (from t in db.Tenants
                     join m in db.Memberships.Where(m => m.UserId == person.Id) on t.Id equals m.TenantId into mine
                     from m in mine.DefaultIfEmpty()
                     orderby t.Name, t.Id
                     select new MembershipSummary(t.Id.ToString(), t.Name, m == null ? Roles.Operator : m.Role)).Take(1000).ToListAsync(ct)
            : await (from m in db.Memberships
                     join t in db.Tenants on m.TenantId equals t.Id
                     where m.UserId == person.Id
                     orderby t.Name, t.Id
                     select new MembershipSummary(t.Id.ToString(), t.Name, m.Role)).ToListAsync(ct);
        return TypedResults.Ok(new MeResponse(person.Id.ToString(), person.Email!, person.DisplayName, isOperator,
            user.FindFirst(ClaimNames.TenantId)?.Value, user.FindFirst(ClaimNames.Role)?.Value, user.GetScopes().ToList(), memberships));
    }

    private static async Task<Results<Created<PersonResponse>, ValidationProblem>> CreatePerson(CreatePersonRequest request, PeopleService people, CancellationToken ct)
    {
        var v = new Validation().Required("password", request.Password).MaxLength("name", request.Name, 200);
        if (!EmailAddress.TryParse(request.Email, out var email, out var error))
        {
            v.Add("email", error);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var (person, errors) = await people.CreatePersonAsync(email.Value, request.Name, request.Password!, request.PlatformOperator, emailConfirmed: false, ct);
        if (person is null)
        {
            return TypedResults.ValidationProblem(errors);
        }
        return TypedResults.Created($"/admin/people/{person.Id}",
            new PersonResponse(person.Id.ToString(), person.Email!, person.DisplayName, request.PlatformOperator, person.EmailConfirmed, person.CreatedAt));
    }

    private static async Task<Ok<List<PersonResponse>>> ListPeople(MemberCenterDbContext db, CancellationToken ct)
    {
        var operatorRole = await db.Roles.Where(r => r.Name == PlatformRoles.Operator).Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
        var people = await db.Users.AsNoTracking().OrderBy(u => u.CreatedAt).Take(10_000)
            .Select(u => new { u.Id, u.Email, u.DisplayName, u.EmailConfirmed, u.CreatedAt, Operator = db.UserRoles.Any(r => r.UserId == u.Id && r.RoleId == operatorRole) })
            .ToListAsync(ct);
        return TypedResults.Ok(people.Select(p => new PersonResponse(p.Id.ToString(), p.Email!, p.DisplayName, p.Operator, p.EmailConfirmed, p.CreatedAt)).ToList());
    }

    private static void ValidateRole(Validation v, string? role)
    {
        if (string.IsNullOrWhiteSpace(role))
        {
            v.Add("role", "The role field is required.");
        }
        else if (!RoleScopes.IsTenantRole(role))
        {
            v.Add("role", $"The role must be one of: {string.Join(", ", Roles.TenantRoles)}.");
        }
    }

    private static MemberResponse ToResponse(PeopleService.MemberView m) =>
        new(m.UserId.ToString(), m.TenantId.ToString(), m.Email, m.Name, m.Role, m.CreatedAt);

    private static InvitationResponse ToResponse(Invitation i, DateTimeOffset now) => new(i.Id.ToString(), i.TenantId.ToString(), i.Email, i.Role,
        i.AcceptedAt is not null ? "accepted" : i.ExpiresAt <= now ? "expired" : "pending", i.CreatedAt, i.ExpiresAt, i.AcceptedAt);

    private static ProblemHttpResult MemberNotFound() => TypedResults.Problem(statusCode: 404, title: "Member not found");
    private static ProblemHttpResult TenantNotFound() => TypedResults.Problem(statusCode: 404, title: "Tenant not found");
    private static ProblemHttpResult LastOwner() => TypedResults.Problem(statusCode: 409, title: "Last owner",
        detail: "A tenant keeps at least one owner: make someone else owner first.");
}
