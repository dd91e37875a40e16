using NewsletterConsole.Extensions;

namespace NewsletterConsole;

public class Program
{
    public static async Task Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddConsoleDefaults()
            .AddConsoleData()
            .AddConsoleAuthentication()
            .AddServiceApis();
        builder.Services.AddRazorPages(o => o.Conventions.AuthorizeFolder("/").AllowAnonymousToPage("/StatusCode").AllowAnonymousToPage("/SignedOut"));

        var app = builder.Build();
        app.UseConsoleDefaults();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseApiErrorPages();
        app.MapProgressProxy();
        app.MapExportRelay();
        app.MapOperationLogExportRelay();
        app.MapRazorPages();
        await app.RunAsync();
    }
}
