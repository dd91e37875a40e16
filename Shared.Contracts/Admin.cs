namespace Newsletter.Contracts;

// Platform administration API of Member Center (scope platform:admin).

public sealed record CreateTenantRequest(string? Name);
public sealed record TenantResponse(string TenantId, string Name, DateTimeOffset CreatedAt);

public sealed record CreateListRequest(string? Name);
public sealed record MailingListResponse(string ListId, string TenantId, string Name, DateTimeOffset CreatedAt);

public sealed record CreateClientRequest(string? Usage, string? Name);
public sealed record ApiClientResponse(string ClientId, string TenantId, string Usage, string Name, IReadOnlyList<string> Scopes, bool Disabled, DateTimeOffset CreatedAt);
/// <summary>Returned once, at creation or rotation: the secret is stored only as a hash.</summary>
public sealed record ApiClientSecretResponse(string ClientId, string TenantId, string Usage, string ClientSecret, IReadOnlyList<string> Scopes);

public sealed record SigningKeyResponse(string KeyId, DateTimeOffset NotBefore, DateTimeOffset NotAfter, string State);
