using MemberCenter.Extensions;
using MemberCenter.Features.Admin;
using MemberCenter.Features.ApiKeys;
using MemberCenter.Features.Auth;
using MemberCenter.Features.Internal;
using MemberCenter.Features.Lists;
using MemberCenter.Features.People;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Privacy;
using MemberCenter.Features.Subscribers;
using MemberCenter.Features.Subscriptions;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;

namespace MemberCenter;

public class Program
{
    public static async Task Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults("Member Center")
            .AddMemberCenterApiDocument()
            .AddMemberCenterData()
            .AddAuthorizationServer()
            .AddPeople()
            .AddNewsletter()
            .AddPrivacy()
            .AddSubscriberDirectory();

        var app = builder.Build();
        app.UseServiceDefaults();
        app.UseOperationLog();
        app.UseAuthorizationServer();

        app.MapTokenEndpoint();
        app.MapAuthorizeEndpoint();
        app.MapRazorPages();
        app.MapSubscriptionsApi();
        app.MapListsApi();
        app.MapReaderSettingsApi();
        app.MapAdminApi();
        app.MapSubscribersApi();
        app.MapInternalApi();
        app.MapApiKeysApi();
        app.MapSubscriberDirectoryApi();
        app.MapOperationLogApi(Policies.LogsRead, Policies.Admin);
        app.MapMembersApi();
        app.MapClientsApi();
        await app.RunAsync();
    }
}
