namespace Newsletter.Contracts;

// People, memberships and invitations in Member Center (the console's sign-in). JSON is snake_case.

/// <summary>A person's membership of a tenant.</summary>
public sealed record MemberResponse(string UserId, string TenantId, string Email, string? Name, string Role, DateTimeOffset CreatedAt);

public sealed record UpdateMemberRequest(string? Role);

public sealed record CreateInvitationRequest(string? Email, string? Role);

/// <summary>An invitation; the token is only in the mail. Status is pending, accepted or expired.</summary>
public sealed record InvitationResponse(string InvitationId, string TenantId, string Email, string Role, string Status, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, DateTimeOffset? AcceptedAt);

/// <summary>GET /api/me: the signed-in person, the tenant and role of the token, and every tenant they may switch to.</summary>
public sealed record MeResponse(string UserId, string Email, string? Name, bool PlatformOperator, string? TenantId, string? Role, IReadOnlyList<string> Scopes, IReadOnlyList<MembershipSummary> Memberships);

public sealed record MembershipSummary(string TenantId, string TenantName, string Role);

/// <summary>POST /admin/people: a person account; platform_operator makes it a platform operator.</summary>
public sealed record CreatePersonRequest(string? Email, string? Name, string? Password, bool PlatformOperator = false);

public sealed record PersonResponse(string UserId, string Email, string? Name, bool PlatformOperator, bool EmailConfirmed, DateTimeOffset CreatedAt);

/// <summary>POST /admin/tenants/{tenant_id}/members: by user_id or e-mail of an existing person.</summary>
public sealed record AdminAddMemberRequest(string? UserId, string? Email, string? Role);
