namespace Newsletter.Contracts.SenderDomains;

// The domains a tenant may send transactional mail from (Send Engine): /api/sender-domains (send_api tokens) and
// /admin/tenants/{tenant_id}/sender-domains (platform:admin).

/// <summary>A host name; an internationalised one is stored in punycode.</summary>
public sealed record AddSenderDomainRequest(string? Domain);

/// <summary><c>status</c> is unverified: DNS verification (SPF, DKIM) is not built yet.</summary>
public sealed record SenderDomainResponse(string Domain, string TenantId, string Status, DateTimeOffset CreatedAt);

public static class SenderDomainStatuses
{
    public const string Unverified = "unverified";
}
