using Newsletter.Contracts;

namespace MemberCenter.Features.People;

/// <summary>Which scopes each role grants in a person's token; each role has everything of the one below it.</summary>
public static class RoleScopes
{
    private static readonly string[] Viewer = [Scopes.ListsRead, Scopes.SubscriptionsRead, Scopes.SendRead, Scopes.LogsRead];
    private static readonly string[] Editor = [.. Viewer, Scopes.ContentRead, Scopes.ListsWrite, Scopes.SubscriptionsWrite, Scopes.SendWrite];
    private static readonly string[] Admin = [.. Editor, Scopes.ApiKeysRead, Scopes.Webhooks, Scopes.SettingsWrite];
    private static readonly string[] Owner = [.. Admin, Scopes.ApiKeysWrite, Scopes.Clients, Scopes.Members];
    private static readonly string[] Operator = [.. Owner, Scopes.PlatformAdmin];

    /// <summary>Every scope a person's token can carry.</summary>
    public static IReadOnlyList<string> All => Operator;

    public static IReadOnlyList<string> Of(string role) => role switch
    {
        Roles.Viewer => Viewer,
        Roles.Editor => Editor,
        Roles.Admin => Admin,
        Roles.Owner => Owner,
        Roles.Operator => Operator,
        _ => [],
    };

    public static bool IsTenantRole(string? role) => role is Roles.Owner or Roles.Admin or Roles.Editor or Roles.Viewer;
}
