using Microsoft.AspNetCore.Authorization;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;

namespace MemberCenter.Extensions;

/// <summary>Authorization policies: each route group needs its audience and a scope; tenant routes also a tenant_id.</summary>
public static class Policies
{
    public const string SubscriptionsRead = "tenant:" + Scopes.SubscriptionsRead;
    public const string SubscriptionsWrite = "tenant:" + Scopes.SubscriptionsWrite;
    public const string ListsRead = "tenant:" + Scopes.ListsRead;
    public const string ListsWrite = "tenant:" + Scopes.ListsWrite;
    public const string ApiKeysRead = "tenant:" + Scopes.ApiKeysRead;
    public const string ApiKeysWrite = "tenant:" + Scopes.ApiKeysWrite;
    public const string LogsRead = "tenant:" + Scopes.LogsRead;
    public const string SettingsWrite = "tenant:" + Scopes.SettingsWrite;
    public const string Members = "tenant:" + Scopes.Members;
    public const string Clients = "tenant:" + Scopes.Clients;
    /// <summary>A person's token (console), with or without a tenant: /api/me.</summary>
    public const string Person = "person";
    public const string Admin = "admin";
    public const string InternalRecipients = "internal:" + Scopes.InternalRecipientsRead;
    public const string InternalSuppressions = "internal:" + Scopes.InternalSuppressionsWrite;
    public const string InternalApiKeys = "internal:" + Scopes.InternalApiKeysVerify;

    public static IServiceCollection AddMemberCenterAuthorization(this IServiceCollection services)
    {
        services.AddAuthorizationBuilder()
            .AddPolicy(SubscriptionsRead, p => Require(p, Audiences.MemberCenterApi, Scopes.SubscriptionsRead, tenant: true))
            .AddPolicy(SubscriptionsWrite, p => Require(p, Audiences.MemberCenterApi, Scopes.SubscriptionsWrite, tenant: true))
            .AddPolicy(ListsRead, p => Require(p, Audiences.MemberCenterApi, Scopes.ListsRead, tenant: true))
            .AddPolicy(ListsWrite, p => Require(p, Audiences.MemberCenterApi, Scopes.ListsWrite, tenant: true))
            .AddPolicy(ApiKeysRead, p => Require(p, Audiences.MemberCenterApi, Scopes.ApiKeysRead, tenant: true))
            .AddPolicy(ApiKeysWrite, p => Require(p, Audiences.MemberCenterApi, Scopes.ApiKeysWrite, tenant: true))
            .AddPolicy(SettingsWrite, p => Require(p, Audiences.MemberCenterApi, Scopes.SettingsWrite, tenant: true))
            .AddPolicy(LogsRead, p => Require(p, Audiences.MemberCenterApi, Scopes.LogsRead, tenant: true))
            .AddPolicy(Members, p => Require(p, Audiences.MemberCenterApi, Scopes.Members, tenant: true))
            .AddPolicy(Clients, p => Require(p, Audiences.MemberCenterApi, Scopes.Clients, tenant: true))
            .AddPolicy(Person, p =>
            {
                p.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
                p.RequireAuthenticatedUser();
                p.RequireAssertion(ctx => ctx.User.GetAudiences().Contains(Audiences.MemberCenterApi) && ctx.User.HasClaim(c => c.Type == ClaimNames.Role));
            })
            .AddPolicy(Admin, p => Require(p, Audiences.MemberCenterAdmin, Scopes.PlatformAdmin, tenant: false))
            .AddPolicy(InternalRecipients, p => Require(p, Audiences.MemberCenterInternal, Scopes.InternalRecipientsRead, tenant: false))
            .AddPolicy(InternalSuppressions, p => Require(p, Audiences.MemberCenterInternal, Scopes.InternalSuppressionsWrite, tenant: false))
            .AddPolicy(InternalApiKeys, p => Require(p, Audiences.MemberCenterInternal, Scopes.InternalApiKeysVerify, tenant: false));
        return services;
    }

    private static void Require(AuthorizationPolicyBuilder policy, string audience, string scope, bool tenant)
    {
        policy.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        policy.RequireAuthenticatedUser();
        policy.RequireAssertion(ctx =>
            ctx.User.HasScope(scope)
            && ctx.User.GetAudiences().Contains(audience)
            && (!tenant || ctx.User.HasTenant()));
    }
}
