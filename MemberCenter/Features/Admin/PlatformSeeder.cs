using MemberCenter.Data;
using MemberCenter.Features.Auth;
using MemberCenter.Features.Lists;
using MemberCenter.Features.People;
using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;

namespace MemberCenter.Features.Admin;

/// <summary>Demo data for run.sh: one tenant, one list and one client of each usage, with ids and secrets from configuration.</summary>
public sealed class DemoOptions
{
    public const string Section = "Demo";

    public bool Enabled { get; set; }
    public Guid TenantId { get; set; }
    public string TenantName { get; set; } = "Demo Tenant";
    public Guid ListId { get; set; }
    public string ListName { get; set; } = "Weekly Newsletter";
    /// <summary>The demo tenant's branding postal address, so its bulk mail carries the CAN-SPAM footer (set once; edits stay).</summary>
    public string? PostalAddress { get; set; } = "Demo Tenant, 1 Example Street, Springfield, IL 62701, USA";
    public string? TenantApiClientId { get; set; }
    public string? TenantApiClientSecret { get; set; }
    public string? SendApiClientId { get; set; }
    public string? SendApiClientSecret { get; set; }
}

/// <summary>Creates what configuration says must exist. Idempotent: run on every start.</summary>
public sealed class PlatformSeeder(
    MemberCenterDbContext db,
    ApiClientRegistry clients,
    PeopleService people,
    IOptions<BootstrapOptions> bootstrap,
    IOptions<ConsoleOptions> console,
    IOptions<DemoOptions> demo,
    TimeProvider clock)
{
    public async Task SeedAsync(CancellationToken ct)
    {
        var b = bootstrap.Value;
        if (b.AdminClientId is { } adminId && b.AdminClientSecret is { } adminSecret)
        {
            await clients.EnsureAsync(adminId, null, ClientUsagePolicy.PlatformAdmin, "Platform administrator", adminSecret, ct);
        }
        if (b.SendEngineClientId is { } seId && b.SendEngineClientSecret is { } seSecret)
        {
            await clients.EnsureAsync(seId, null, ClientUsagePolicy.SendEngineService, "Send Engine", seSecret, ct);
        }
        var c = console.Value;
        if (c.ClientSecret is { } consoleSecret)
        {
            await clients.EnsureCodeClientAsync(c.ClientId, "Console", consoleSecret, c.Link("/signin-oidc"), c.Link("/signout-callback-oidc"), ct);
        }
        if (b.OperatorEmail is { } operatorEmail && b.OperatorPassword is { } operatorPassword)
        {
            await people.EnsureOperatorAsync(operatorEmail, operatorPassword, ct);
        }

        var d = demo.Value;
        if (!d.Enabled)
        {
            return;
        }
        if (d.TenantId == Guid.Empty || d.ListId == Guid.Empty)
        {
            throw new InvalidOperationException("Demo:Enabled needs Demo:TenantId and Demo:ListId.");
        }
        var now = clock.GetUtcNow();
        if (!await db.Tenants.AnyAsync(t => t.Id == d.TenantId, ct))
        {
            db.Tenants.Add(new Tenant { Id = d.TenantId, Name = d.TenantName, CreatedAt = now });
            await db.SaveChangesAsync(ct);
        }
        if (!await db.MailingLists.AnyAsync(l => l.Id == d.ListId, ct))
        {
            db.MailingLists.Add(new MailingList { Id = d.ListId, TenantId = d.TenantId, Name = d.ListName, CreatedAt = now });
            await db.SaveChangesAsync(ct);
        }
        if (!string.IsNullOrWhiteSpace(d.PostalAddress) && !await db.TenantBrandings.AnyAsync(b => b.TenantId == d.TenantId, ct))
        {
            db.TenantBrandings.Add(new Reader.TenantBranding { TenantId = d.TenantId, PostalAddress = d.PostalAddress.Trim(), UpdatedAt = now });
            await db.SaveChangesAsync(ct);
        }
        if (d.TenantApiClientId is { } tid && d.TenantApiClientSecret is { } tsecret)
        {
            await clients.EnsureAsync(tid, d.TenantId, ClientUsages.TenantApi, "Demo tenant site", tsecret, ct);
        }
        if (d.SendApiClientId is { } sid && d.SendApiClientSecret is { } ssecret)
        {
            await clients.EnsureAsync(sid, d.TenantId, ClientUsages.SendApi, "Demo sender", ssecret, ct);
        }
    }
}
