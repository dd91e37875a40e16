namespace Newsletter.Contracts;

/// <summary>OAuth scope names on the wire. Tenants see the newsletter:* ones; internal:* are Send Engine's only.</summary>
public static class Scopes
{
    public const string SendWrite = "newsletter:send.write";
    public const string SendRead = "newsletter:send.read";
    public const string SubscriptionsRead = "newsletter:subscriptions.read";
    public const string SubscriptionsWrite = "newsletter:subscriptions.write";
    public const string ListsRead = "newsletter:lists.read";
    public const string ListsWrite = "newsletter:lists.write";
    /// <summary>The tenant's applications and their X-Pigeon-Api-Key keys in Member Center (tenant_api clients).</summary>
    public const string ApiKeysRead = "newsletter:api_keys.read";
    public const string ApiKeysWrite = "newsletter:api_keys.write";
    /// <summary>
    /// Change tenant-wide reader settings in Member Center: the branding (name, logo, colours, footer, postal address,
    /// confirmation mail) and lists' preference fields. People get it from the admin role up; tenant_api clients have it.
    /// </summary>
    public const string SettingsWrite = "newsletter:settings.write";
    /// <summary>Send Engine: manage the tenant's event webhook endpoints, read their attempts, replay events.</summary>
    public const string Webhooks = "newsletter:webhooks";
    /// <summary>
    /// Message bodies, attachments, subscriber preferences and merge data. Without it the APIs answer those fields as
    /// null and body-only routes (the compose preview) with 403. People get it from the editor role up.
    /// </summary>
    public const string ContentRead = "newsletter:content.read";
    /// <summary>Read the service's operation log of the tenant (who changed what through the tenant and admin APIs).</summary>
    public const string LogsRead = "newsletter:logs.read";
    /// <summary>The people and invitations of the tenant (Member Center).</summary>
    public const string Members = "newsletter:members";
    /// <summary>The tenant's OAuth API clients (Member Center).</summary>
    public const string Clients = "newsletter:clients";

    public const string PlatformAdmin = "platform:admin";

    /// <summary>Send Engine reads a list's confirmed recipients.</summary>
    public const string InternalRecipientsRead = "internal:recipients.read";
    /// <summary>Send Engine reports bounces, complaints and ESP unsubscribes.</summary>
    public const string InternalSuppressionsWrite = "internal:suppressions.write";
    /// <summary>Member Center exports and erases an address's data in Send Engine (its own token, audience send_engine_internal).</summary>
    public const string InternalSubscribersErase = "internal:subscribers.erase";
    /// <summary>Send Engine asks who an X-Pigeon-Api-Key belongs to.</summary>
    public const string InternalApiKeysVerify = "internal:api_keys.verify";
}

public static class Audiences
{
    /// <summary>Default audience of send_api tokens; overridable with Auth__SendEngineAudience.</summary>
    public const string SendEngineApi = "send_engine_api";
    public const string MemberCenterApi = "member_center_api";
    public const string MemberCenterInternal = "member_center_internal";
    public const string MemberCenterAdmin = "member_center_admin";
    /// <summary>Tokens Member Center mints for itself to call Send Engine's internal routes.</summary>
    public const string SendEngineInternal = "send_engine_internal";
}

public static class ClaimNames
{
    public const string TenantId = "tenant_id";
    public const string ClientId = "client_id";
    public const string Scope = "scope";
    /// <summary>On a request authenticated with X-Pigeon-Api-Key: the key's application and the key itself.</summary>
    public const string ApplicationId = "application_id";
    public const string ApiKeyId = "api_key_id";
    /// <summary>A person's role in the token's tenant (<see cref="Roles"/>); client-credentials tokens have none.</summary>
    public const string Role = "role";
    public const string Email = "email";
    public const string Name = "name";
    public const string Subject = "sub";
}

/// <summary>A person's role in a tenant, as the <c>role</c> claim of their access token carries it.</summary>
public static class Roles
{
    public const string Owner = "owner";
    public const string Admin = "admin";
    public const string Editor = "editor";
    public const string Viewer = "viewer";
    /// <summary>A platform operator (Identity role platform_operator) acting in any tenant.</summary>
    public const string Operator = "operator";

    /// <summary>The roles a membership can have, most powerful first.</summary>
    public static readonly IReadOnlyList<string> TenantRoles = [Owner, Admin, Editor, Viewer];
}

/// <summary>What an API client is for; decides its scopes and audience.</summary>
public static class ClientUsages
{
    public const string SendApi = "send_api";
    public const string TenantApi = "tenant_api";
}
