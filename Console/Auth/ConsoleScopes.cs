using Newsletter.Contracts;

namespace NewsletterConsole.Auth;

/// <summary>What the console asks Member Center for; the person gets their role's scopes among these.</summary>
public static class ConsoleScopes
{
    public static readonly IReadOnlyList<string> Requested =
    [
        "openid", "offline_access",
        Scopes.ListsRead, Scopes.ListsWrite, Scopes.SubscriptionsRead, Scopes.SubscriptionsWrite,
        Scopes.SendRead, Scopes.SendWrite, Scopes.ApiKeysRead, Scopes.ApiKeysWrite, Scopes.Webhooks,
        Scopes.ContentRead, Scopes.LogsRead, Scopes.Members, Scopes.Clients, Scopes.SettingsWrite, Scopes.PlatformAdmin,
    ];
}
