using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts;

namespace MemberCenter.Features.Auth;

/// <summary>
/// An OAuth client as the platform sees it: whose it is and what it is for. Its secret lives, hashed,
/// in the OpenIddict application with the same client_id.
/// </summary>
public sealed class ApiClient
{
    public Guid Id { get; set; }
    public required string ClientId { get; set; }
    /// <summary>Null for platform clients (admin, Send Engine).</summary>
    public Guid? TenantId { get; set; }
    public required string Usage { get; set; }
    public required string Name { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? SecretRotatedAt { get; set; }
    public DateTimeOffset? DisabledAt { get; set; }
}

/// <summary>The scopes and audience each usage grants. Tenants choose a usage, never single scopes.</summary>
public static class ClientUsagePolicy
{
    public const string PlatformAdmin = "platform_admin";
    public const string SendEngineService = "send_engine_service";
    /// <summary>The console (authorization code flow): its tokens are people's, built by PersonTokens, never by usage.</summary>
    public const string Console = "console";

    private static readonly Dictionary<string, string[]> ScopesByUsage = new(StringComparer.Ordinal)
    {
        [ClientUsages.SendApi] = [Scopes.SendWrite, Scopes.SendRead, Scopes.Webhooks],
        // settings.write: branding and preference fields were lists.write before it existed; a tenant's own site keeps them.
        // content.read: a tenant site has always read its subscribers' preferences, which are now behind it.
        [ClientUsages.TenantApi] = [Scopes.SubscriptionsRead, Scopes.SubscriptionsWrite, Scopes.ListsRead, Scopes.ListsWrite, Scopes.ApiKeysRead, Scopes.ApiKeysWrite, Scopes.ContentRead, Scopes.LogsRead, Scopes.SettingsWrite],
        [PlatformAdmin] = [Scopes.PlatformAdmin],
        [SendEngineService] = [Scopes.InternalRecipientsRead, Scopes.InternalSuppressionsWrite, Scopes.InternalApiKeysVerify],
    };

    public static IReadOnlyCollection<string> AllScopes { get; } = ScopesByUsage.Values.SelectMany(s => s).Distinct().ToArray();

    public static bool IsTenantUsage(string usage) => usage is ClientUsages.SendApi or ClientUsages.TenantApi;

    public static IReadOnlyList<string> ScopesOf(string usage) => ScopesByUsage.TryGetValue(usage, out var s) ? s : [];

    /// <summary>
    /// The token's audiences. Platform administrators also get Send Engine's, whose admin routes (sender domains,
    /// webhook endpoints) require platform:admin; Send Engine's tenant routes still refuse them (no tenant_id).
    /// </summary>
    public static string[] AudiencesOf(string usage, AuthOptions auth) => usage switch
    {
        ClientUsages.SendApi => [auth.SendEngineAudience],
        ClientUsages.TenantApi => [Audiences.MemberCenterApi],
        PlatformAdmin => [Audiences.MemberCenterAdmin, auth.SendEngineAudience],
        SendEngineService => [Audiences.MemberCenterInternal],
        Console => [Audiences.MemberCenterApi, auth.SendEngineAudience],
        _ => throw new ArgumentOutOfRangeException(nameof(usage), usage, "Unknown client usage."),
    };
}

internal sealed class ApiClientConfiguration : IEntityTypeConfiguration<ApiClient>
{
    public void Configure(EntityTypeBuilder<ApiClient> b)
    {
        b.ToTable("api_clients");
        b.Property(c => c.ClientId).HasMaxLength(100);
        b.Property(c => c.Usage).HasMaxLength(40);
        b.Property(c => c.Name).HasMaxLength(200);
        b.HasIndex(c => c.ClientId).IsUnique();
        b.HasIndex(c => c.TenantId);
        b.HasOne<Tenant>().WithMany().HasForeignKey(c => c.TenantId).OnDelete(DeleteBehavior.Restrict);
    }
}
