using Newsletter.ServiceDefaults;

namespace SendEngine.Extensions;

/// <summary>What Send Engine's API document (docs/openapi/send-engine.json) says about its sections.</summary>
public static class ApiDocumentExtensions
{
    public static WebApplicationBuilder AddSendEngineApiDocument(this WebApplicationBuilder builder) => builder.DescribeApiTags(
        ("Send jobs", "Bulk sends to a Member Center list: create, follow, cancel, resume; per-recipient outcomes and events."),
        ("Suppressions", "Addresses the tenant's mail never goes to."),
        ("Email events", "ESP events and statistics per address."),
        ("Tencent SES", "The callback Tencent Cloud SES posts delivery events to."),
        ("Internal (Member Center)", "Member Center's service API for subscriber export and erasure. Tenant tokens are refused."),
        // Tags of the issue 12 routes (transactional mail, API keys, sender domains, webhooks): a description is
        // written only where a route uses the tag.
        ("Transactional email", "The seed 003 transactional mail API (X-Pigeon-Api-Key; errors in the seed's {\"error\": {code, name, message}} shape)."),
        ("Transactional mail", "The application and expiry of the request's X-Pigeon-Api-Key."),
        ("Sender domains", "The domains from_email of transactional mail may use."),
        ("Webhooks", "The tenant's signed event webhooks (Standard Webhooks): endpoints, secrets, attempts, replay."),
        ("Webhooks (admin)", "Any tenant's event webhooks (platform:admin)."),
        ("Bounce mailboxes", "The tenant's IMAP mailboxes for asynchronous bounces (DSN) and complaint reports (ARF); newsletter:webhooks scope."),
        ("Bounce mailboxes (admin)", "Any tenant's bounce mailboxes and the platform mailbox's status (platform:admin)."),
        ("Admin", "Platform administration of any tenant (platform:admin)."));
}
