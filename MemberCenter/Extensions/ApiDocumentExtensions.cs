using Newsletter.ServiceDefaults;

namespace MemberCenter.Extensions;

/// <summary>What Member Center's API document (docs/openapi/member-center.json) says about its sections.</summary>
public static class ApiDocumentExtensions
{
    public static WebApplicationBuilder AddMemberCenterApiDocument(this WebApplicationBuilder builder) => builder.DescribeApiTags(
        ("OAuth", "Access tokens (client_credentials), discovery and the signing keys that verify them."),
        ("Newsletter", "Subscriptions for tenant sites (bearer), and the end-user pages reached from email links (the link's token is the credential)."),
        ("Lists", "A tenant's own lists (tenant_api clients)."),
        ("Subscribers (personal data)", "Export and erasure of everything both services hold about an address (tenant_api clients)."),
        ("Admin", "Platform administration: tenants, their lists, API clients and applications, signing keys (platform:admin)."),
        ("Applications and API keys", "A tenant's applications and their X-Pigeon-Api-Key keys for the transactional mail API (seed 003)."),
        ("Internal (Send Engine)", "Send Engine's service API: recipients, link keys, change feed, suppression reports. Tenant tokens are refused."));
}
