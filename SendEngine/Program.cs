using Newsletter.ServiceDefaults;
using SendEngine.Extensions;
using SendEngine.Features.SendJobs;
using SendEngine.Features.Suppressions;

namespace SendEngine;

public class Program
{
    public static async Task Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults("Send Engine")
            .AddSendEngineData()
            .AddSendEngineAuth()
            .AddSendEngine()
            .AddSendEngineEmailEvents()
            .AddSendEngineWebhooks()
            .AddSendEngineHangfire();

        var app = builder.Build();
        app.UseServiceDefaults();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseHangfireDashboardForOperators();

        app.MapSendJobsApi();
        app.MapSuppressionsApi();
        app.MapSendEngineEmailEvents();
        app.MapSendEngineWebhooks();
        await app.RunAsync();
    }
}
