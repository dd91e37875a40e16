using MemberCenter.Data;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Background;

namespace MemberCenter.Features.People;

public enum MemberChange { Done, NotFound, LastOwner }

/// <summary>People, memberships and invitations: the rules (the last owner stays, invitations expire) in one place.</summary>
public sealed class PeopleService(
    MemberCenterDbContext db,
    UserManager<Person> users,
    RoleManager<IdentityRole<Guid>> roles,
    WakeSignal<OutboxDispatcher> outbox,
    IOptions<PeopleOptions> options,
    TimeProvider clock)
{
    public sealed record MemberView(Guid UserId, Guid TenantId, string Email, string? Name, string Role, DateTimeOffset CreatedAt);

    /// <summary>Creates the configured operator, or gives the existing account the operator role and the configured password.</summary>
    public async Task EnsureOperatorAsync(string email, string password, CancellationToken ct)
    {
        var user = await users.FindByEmailAsync(email);
        if (user is null)
        {
            var (created, errors) = await CreatePersonAsync(email, null, password, platformOperator: true, emailConfirmed: true, ct);
            if (created is null)
            {
                throw new InvalidOperationException("Bootstrap:OperatorEmail/OperatorPassword: " + string.Join(" ", errors.SelectMany(e => e.Value)));
            }
            return;
        }
        await EnsureOperatorRoleAsync();
        if (!await users.IsInRoleAsync(user, PlatformRoles.Operator))
        {
            Check(await users.AddToRoleAsync(user, PlatformRoles.Operator));
        }
        if (!await users.CheckPasswordAsync(user, password))
        {
            Check(await users.RemovePasswordAsync(user));
            Check(await users.AddPasswordAsync(user, password));
        }
        if (!user.EmailConfirmed)
        {
            user.EmailConfirmed = true;
            Check(await users.UpdateAsync(user));
        }
    }

    /// <summary>A new account; errors are keyed by the request's field (email, password). Unconfirmed accounts get the confirmation mail.</summary>
    public async Task<(Person? Person, Dictionary<string, string[]> Errors)> CreatePersonAsync(
        string email, string? name, string password, bool platformOperator, bool emailConfirmed, CancellationToken ct)
    {
        var person = new Person
        {
            Id = Guid.CreateVersion7(),
            UserName = email,
            Email = email,
            DisplayName = string.IsNullOrWhiteSpace(name) ? null : name.Trim(),
            EmailConfirmed = emailConfirmed,
            CreatedAt = clock.GetUtcNow(),
        };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var result = await users.CreateAsync(person, password);
        if (!result.Succeeded)
        {
            return (null, ToErrors(result));
        }
        if (platformOperator)
        {
            await EnsureOperatorRoleAsync();
            Check(await users.AddToRoleAsync(person, PlatformRoles.Operator));
        }
        if (!emailConfirmed)
        {
            Enqueue(OutboxKinds.AccountEmailConfirmation, userId: person.Id);
            await db.SaveChangesAsync(ct);
        }
        await tx.CommitAsync(ct);
        outbox.Notify();
        return (person, []);
    }

    /// <summary>Queues a reset mail for a confirmed account; says nothing either way, so the page cannot reveal accounts.</summary>
    public async Task RequestPasswordResetAsync(string email, CancellationToken ct)
    {
        var user = await users.FindByEmailAsync(email);
        if (user is null || !user.EmailConfirmed)
        {
            return;
        }
        Enqueue(OutboxKinds.PasswordReset, userId: user.Id);
        await db.SaveChangesAsync(ct);
        outbox.Notify();
    }

    public async Task<List<MemberView>> ListMembersAsync(Guid tenantId, CancellationToken ct) =>
        await (from m in db.Memberships
               join u in db.Users on m.UserId equals u.Id
               where m.TenantId == tenantId
               orderby m.CreatedAt, m.UserId
               select new MemberView(m.UserId, m.TenantId, u.Email!, u.DisplayName, m.Role, m.CreatedAt)).AsNoTracking().ToListAsync(ct);

    public async Task<MemberView?> GetMemberAsync(Guid tenantId, Guid userId, CancellationToken ct) =>
        await (from m in db.Memberships
               join u in db.Users on m.UserId equals u.Id
               where m.TenantId == tenantId && m.UserId == userId
               select new MemberView(m.UserId, m.TenantId, u.Email!, u.DisplayName, m.Role, m.CreatedAt)).AsNoTracking().FirstOrDefaultAsync(ct);

    /// <summary>Adds an existing person (or changes nothing if already a member); null when there is no such person.</summary>
    public async Task<(MemberView? Member, bool Created)> AddMemberAsync(Guid tenantId, Person person, string role, CancellationToken ct)
    {
        if (await GetMemberAsync(tenantId, person.Id, ct) is { } existing)
        {
            return (existing, false);
        }
        db.Memberships.Add(new Membership { UserId = person.Id, TenantId = tenantId, Role = role, CreatedAt = clock.GetUtcNow() });
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // Added concurrently: the membership exists, which is what was asked.
            db.ChangeTracker.Clear();
            return (await GetMemberAsync(tenantId, person.Id, ct), false);
        }
        return (await GetMemberAsync(tenantId, person.Id, ct), true);
    }

    public Task<MemberChange> ChangeRoleAsync(Guid tenantId, Guid userId, string role, CancellationToken ct) =>
        ChangeAsync(tenantId, userId, role, ct);

    public Task<MemberChange> RemoveMemberAsync(Guid tenantId, Guid userId, CancellationToken ct) =>
        ChangeAsync(tenantId, userId, null, ct);

    /// <summary>
    /// A role change (or removal, role null) that keeps at least one owner. The tenant's owner rows are locked first, so
    /// two owners demoting each other at the same time cannot both succeed.
    /// </summary>
    private async Task<MemberChange> ChangeAsync(Guid tenantId, Guid userId, string? role, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var owners = await db.Database.SqlQuery<Guid>($"""
            SELECT user_id AS "Value" FROM memberships WHERE tenant_id = {tenantId} AND role = {Roles.Owner} ORDER BY user_id FOR UPDATE
            """).ToListAsync(ct);
        var membership = await db.Memberships.FirstOrDefaultAsync(m => m.TenantId == tenantId && m.UserId == userId, ct);
        if (membership is null)
        {
            return MemberChange.NotFound;
        }
        if (membership.Role == Roles.Owner && role != Roles.Owner && owners.Count <= 1)
        {
            return MemberChange.LastOwner;
        }
        if (role is null)
        {
            db.Memberships.Remove(membership);
        }
        else
        {
            membership.Role = role;
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return MemberChange.Done;
    }

    public async Task<Invitation> InviteAsync(Guid tenantId, EmailAddress email, string role, Guid? invitedBy, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var invitation = new Invitation
        {
            Id = Guid.CreateVersion7(),
            TenantId = tenantId,
            Email = email.Value,
            NormalizedEmail = users.NormalizeEmail(email.Value) ?? email.Value,
            Role = role,
            InvitedBy = invitedBy,
            CreatedAt = now,
            ExpiresAt = now + options.Value.InvitationLifetime,
        };
        db.Invitations.Add(invitation);
        Enqueue(OutboxKinds.Invitation, invitationId: invitation.Id);
        await db.SaveChangesAsync(ct);
        outbox.Notify();
        return invitation;
    }

    public async Task<List<Invitation>> ListInvitationsAsync(Guid tenantId, CancellationToken ct) =>
        await db.Invitations.AsNoTracking().Where(i => i.TenantId == tenantId).OrderBy(i => i.CreatedAt).ToListAsync(ct);

    public async Task<bool> DeleteInvitationAsync(Guid tenantId, Guid invitationId, CancellationToken ct) =>
        await db.Invitations.Where(i => i.TenantId == tenantId && i.Id == invitationId).ExecuteDeleteAsync(ct) > 0;

    /// <summary>A pending, unexpired invitation by the token of its mail, with its tenant's name.</summary>
    public async Task<(Invitation Invitation, string TenantName)?> FindInvitationAsync(string? token, CancellationToken ct)
    {
        if (!SubscriptionTokens.IsWellFormed(token))
        {
            return null;
        }
        var hash = SubscriptionTokens.Hash(token!);
        var now = clock.GetUtcNow();
        var row = await (from i in db.Invitations
                         join t in db.Tenants on i.TenantId equals t.Id
                         where i.TokenHash == hash && i.AcceptedAt == null && i.ExpiresAt > now
                         select new { Invitation = i, t.Name }).AsNoTracking().FirstOrDefaultAsync(ct);
        return row is null ? null : (row.Invitation, row.Name);
    }

    /// <summary>Marks the invitation accepted (once: a second accept finds nothing) and adds the membership.</summary>
    public async Task<bool> AcceptAsync(Guid invitationId, Person person, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var now = clock.GetUtcNow();
        var invitation = await db.Invitations.FirstOrDefaultAsync(i => i.Id == invitationId && i.AcceptedAt == null && i.ExpiresAt > now, ct);
        if (invitation is null)
        {
            return false;
        }
        invitation.AcceptedAt = now;
        invitation.AcceptedBy = person.Id;
        invitation.TokenHash = null;
        var membership = await db.Memberships.FirstOrDefaultAsync(m => m.TenantId == invitation.TenantId && m.UserId == person.Id, ct);
        if (membership is null)
        {
            db.Memberships.Add(new Membership { UserId = person.Id, TenantId = invitation.TenantId, Role = invitation.Role, CreatedAt = now });
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return true;
    }

    private void Enqueue(string kind, Guid? userId = null, Guid? invitationId = null)
    {
        var now = clock.GetUtcNow();
        db.OutboxMessages.Add(new OutboxMessage { Kind = kind, UserId = userId, InvitationId = invitationId, CreatedAt = now, NextAttemptAt = now });
    }

    private async Task EnsureOperatorRoleAsync()
    {
        if (!await roles.RoleExistsAsync(PlatformRoles.Operator))
        {
            Check(await roles.CreateAsync(new IdentityRole<Guid>(PlatformRoles.Operator) { Id = Guid.CreateVersion7() }));
        }
    }

    private static void Check(IdentityResult result)
    {
        if (!result.Succeeded)
        {
            throw new InvalidOperationException(string.Join(" ", result.Errors.Select(e => e.Description)));
        }
    }

    /// <summary>Identity's errors under the request field they concern.</summary>
    public static Dictionary<string, string[]> ToErrors(IdentityResult result) => result.Errors
        .GroupBy(e => e.Code.StartsWith("Password", StringComparison.Ordinal) ? "password"
            : e.Code.Contains("Email", StringComparison.Ordinal) || e.Code.Contains("UserName", StringComparison.Ordinal) ? "email" : "person")
        .ToDictionary(g => g.Key, g => g.Select(e => e.Description).Distinct().ToArray());
}
