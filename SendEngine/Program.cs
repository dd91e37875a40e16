using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Extensions;
using SendEngine.Features.ApiKeys;
using SendEngine.Features.Metrics;
using SendEngine.Features.Privacy;
using SendEngine.Features.Reputation;
using SendEngine.Features.SendJobs;
using SendEngine.Features.SenderDomains;
using SendEngine.Features.Suppressions;
using SendEngine.Features.Transactional;

namespace SendEngine;

public class Program
{
    public static async Task Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults("Send Engine")
            .AddSendEngineApiDocument()
            .AddSendEngineData()
            .AddSendEngineAuth()
            .AddSendEngineApiKeys()
            .AddSenderDomains()
            .AddSendEngine()
            .AddSendEngineEmailEvents()
            .AddSendEngineTransactional()
            .AddSendEngineWebhooks()
            .AddSendEngineWebhookGateway()
            .AddSendEngineBounceMailboxes()
            .AddSendEngineProviderCredentials()
            .AddSendEngineReputation()
            .AddSendEngineHangfire();

        var app = builder.Build();
        app.UseServiceDefaults();
        app.UseOperationLog();
        app.UseSendEngineAuthentication();
        app.UseAuthorization();
        app.UseHangfireDashboardForOperators();

        app.MapSendJobsApi();
        app.MapSendJobOperationsApi();
        app.MapSendJobComposeApi();
        app.MapSendJobProgressApi();
        app.MapTransactionalReadApi();
        app.MapStatusApi();
        app.MapSuppressionsApi();
        app.MapSubscriberDataApi();
        app.MapSendEngineEmailEvents();
        app.MapApiKeyInfoApi();
        app.MapSenderDomainsApi();
        app.MapTransactionalEmailApi();
        app.MapSendEngineWebhooks();
        app.MapSendEngineWebhookGateway();
        app.MapSendEngineBounceMailboxes();
        app.MapSendEngineProviderCredentials();
        app.MapReputationApi();
        app.MapOperationLogApi(AuthExtensions.LogsRead, AuthExtensions.Admin);
        await app.RunAsync();
    }
}
