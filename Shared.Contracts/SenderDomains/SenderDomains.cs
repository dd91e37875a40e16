namespace Newsletter.Contracts.SenderDomains;

// The domains a tenant may send mail from (Send Engine): /api/sender-domains (send_api tokens) and
// /admin/tenants/{tenant_id}/sender-domains (platform:admin). docs/deliverability.md "Sender domains and DKIM".

/// <summary>A host name; an internationalised one is stored in punycode.</summary>
public sealed record AddSenderDomainRequest(string? Domain);

/// <summary>
/// A sender domain: its <c>status</c> (unverified until the first check, then verified or failed), when DNS was last
/// checked, the DKIM selector that signs now, the return-path (bounce) domain, and every DNS record to publish with what
/// the last check found.
/// </summary>
public sealed record SenderDomainResponse(
    string Domain,
    string TenantId,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastCheckedAt = null,
    DateTimeOffset? VerifiedAt = null,
    string? DkimSelector = null,
    string? ReturnPathDomain = null,
    IReadOnlyList<SenderDomainDnsRecord>? Records = null);

/// <summary>
/// One record to publish. <c>purpose</c>: dkim, spf, return_path_mx, return_path_spf, dmarc. <c>required</c>: needed
/// for <c>verified</c> (the others are recommended). <c>status</c>: unchecked, ok, missing, wrong (found holds what DNS
/// answered) or error (the lookup failed). A DKIM record of a rotated-out key carries <c>retires_at</c>.
/// </summary>
public sealed record SenderDomainDnsRecord(
    string Purpose,
    string Type,
    string Name,
    string Value,
    bool Required,
    string Status,
    IReadOnlyList<string> Found,
    string? Detail = null,
    string? Selector = null,
    DateTimeOffset? RetiresAt = null);

public static class SenderDomainStatuses
{
    public const string Unverified = "unverified";
    public const string Verified = "verified";
    public const string Failed = "failed";
}

public static class DnsRecordStatuses
{
    public const string Unchecked = "unchecked";
    public const string Ok = "ok";
    public const string Missing = "missing";
    public const string Wrong = "wrong";
    public const string Error = "error";
}

public static class DnsRecordPurposes
{
    public const string Dkim = "dkim";
    public const string Spf = "spf";
    public const string ReturnPathMx = "return_path_mx";
    public const string ReturnPathSpf = "return_path_spf";
    public const string Dmarc = "dmarc";
}

/// <summary>
/// A verified sender domain's warm-up as GET /api/reputation shows it (<c>limits.sender_domains</c>): the schedule runs
/// from <c>verified_at</c>; while <c>warming_up</c>, <c>daily_limit</c> is how many bulk messages from the domain today
/// may carry and <c>sent_today</c> how many it has carried (both null once it is warmed up: then only the tenant's own
/// limits hold it).
/// </summary>
public sealed record SenderDomainWarmup(
    string Domain,
    DateTimeOffset VerifiedAt,
    bool WarmingUp,
    long? DailyLimit,
    long? SentToday);
