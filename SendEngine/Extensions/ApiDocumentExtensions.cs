using Newsletter.ServiceDefaults;

namespace SendEngine.Extensions;

/// <summary>What Send Engine's API document (docs/openapi/send-engine.json) says about its sections.</summary>
public static class ApiDocumentExtensions
{
    public static WebApplicationBuilder AddSendEngineApiDocument(this WebApplicationBuilder builder) => builder.DescribeApiTags(
        ("Send jobs", "Bulk sends to a Member Center list: create, follow, cancel, resume; per-recipient outcomes and events."),
        ("Suppressions", "Addresses the tenant's mail never goes to."),
        ("Email events", "ESP events and statistics per address."),
        ("Tencent SES", "The callback Tencent Cloud SES posts delivery events to."));
}
