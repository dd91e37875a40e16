using System.Net;
using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.Contracts.ProviderCredentials;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Data;
using SendEngine.Features.ProviderCredentials;
using SendEngine.Features.Webhooks;

namespace SendEngine.Features.BounceMailboxes;

/// <summary>
/// Tenants' bounce mailboxes: the tenant API under /api/bounce-mailboxes (the newsletter:webhooks scope, like the
/// event webhooks: both are the tenant's delivery-feedback integrations) and the same for operators (platform:admin)
/// under /admin/tenants/{tenant_id}/bounce-mailboxes, plus the platform mailbox's status. The password is write-only.
/// Another tenant's mailbox is a 404.
/// </summary>
public static class BounceMailboxesApi
{
    public static IEndpointRouteBuilder MapBounceMailboxesApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/bounce-mailboxes").WithTags("Bounce mailboxes");
        // Viewers (newsletter:send.read) see the mailboxes and their status like the provider credentials (no password is
        // ever answered); changes, checks and the set-aside messages need newsletter:webhooks.
        Map(tenant.MapGroup("").RequireAuthorization(ProviderCredentialsApi.ReadPolicy), tenant.MapGroup("").RequireAuthorization(WebhookEndpointsApi.TenantPolicy),
            "", user => user.TenantId());
        var admin = app.MapGroup("/admin/tenants/{tenant_id:guid}/bounce-mailboxes").WithTags("Bounce mailboxes (admin)").RequireAuthorization(Extensions.AuthExtensions.Admin);
        Map(admin, admin, "admin", null);
        app.MapGet("/admin/bounce-mailboxes/platform", async (SendEngineDbContext db, IOptions<BounceMailboxOptions> options, CancellationToken ct) =>
            {
                var p = options.Value.Platform;
                var status = await db.Set<BounceMailboxStatus>().AsNoTracking().FirstOrDefaultAsync(s => s.MailboxKey == MailboxIdentity.PlatformKey, ct);
                return TypedResults.Ok(new PlatformBounceMailboxResponse(p.Configured, p.Configured ? p.Host : null, p.Configured ? p.Port : null,
                    p.Configured ? p.Username : null, p.Configured ? p.Folder : null, ToStatus(status, 0)));
            })
            .WithTags("Bounce mailboxes (admin)").RequireAuthorization(Extensions.AuthExtensions.Admin)
            .WithName("getPlatformBounceMailbox").WithSummary("Whether the platform bounce mailbox is configured, and its reader's status and counters.");
        return app;
    }

    /// <param name="read">Where the list and one mailbox's settings are mapped.</param>
    /// <param name="g">Where everything else is mapped.</param>
    private static void Map(RouteGroupBuilder read, RouteGroupBuilder g, string prefix, Func<ClaimsPrincipal, Guid>? tenantOf)
    {
        Guid Tenant(HttpContext http) => tenantOf?.Invoke(http.User) ?? Guid.Parse((string)http.Request.RouteValues["tenant_id"]!);
        string Name(string verb, string noun) => prefix.Length == 0 ? verb + noun : prefix + char.ToUpperInvariant(verb[0]) + verb[1..] + noun;
        var who = prefix.Length == 0 ? "the tenant's" : "a tenant's";

        g.MapPost("/", (CreateBounceMailboxRequest request, HttpContext http, SendEngineDbContext db, BounceMailboxSecretProtector secrets,
                IOptions<BounceMailboxOptions> options, IHostEnvironment environment, WakeSignal<BounceMailboxSupervisor> signal, TimeProvider clock,
                IOperationLog log, CancellationToken ct) =>
                CreateAsync(Tenant(http), request, prefix.Length == 0 ? "/api/bounce-mailboxes" : $"/admin/tenants/{Tenant(http)}/bounce-mailboxes",
                    db, secrets, options.Value, environment, signal, clock, log, ct))
            .WithName(Name("create", "BounceMailbox"))
            .WithSummary($"Register {who} IMAP mailbox for bounces and complaint reports; the password is stored encrypted and never returned.")
            .Produces<BounceMailboxResponse>(StatusCodes.Status201Created).ProducesValidationProblem();
        read.MapGet("/", async (HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var rows = await db.Set<BounceMailbox>().AsNoTracking().Where(m => m.TenantId == tenantId).OrderBy(m => m.CreatedAt).ToListAsync(ct);
                var statuses = await StatusesAsync(db, rows, ct);
                return TypedResults.Ok(new BounceMailboxList(rows.Select(r => ToResponse(r, statuses)).ToList()));
            })
            .WithName(Name("list", "BounceMailboxes")).WithSummary($"List {who} bounce mailboxes with their readers' status (without passwords).");
        read.MapGet("/{mailboxId:guid}", async (Guid mailboxId, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
                await FindAsync(db, Tenant(http), mailboxId, ct) is { } m ? Results.Ok(ToResponse(m, await StatusesAsync(db, [m], ct))) : NotFound())
            .WithName(Name("get", "BounceMailbox")).WithSummary($"Read one of {who} bounce mailboxes: settings, last error, counters.")
            .Produces<BounceMailboxResponse>().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPatch("/{mailboxId:guid}", (Guid mailboxId, UpdateBounceMailboxRequest request, HttpContext http, SendEngineDbContext db,
                BounceMailboxSecretProtector secrets, IOptions<BounceMailboxOptions> options, IHostEnvironment environment,
                WakeSignal<BounceMailboxSupervisor> signal, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                UpdateAsync(Tenant(http), mailboxId, request, db, secrets, options.Value, environment, signal, clock, log, ct))
            .WithName(Name("update", "BounceMailbox"))
            .WithSummary("Change the server, login, folders or enabled state; the reader reconnects with the new settings.")
            .Produces<BounceMailboxResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapDelete("/{mailboxId:guid}", async (Guid mailboxId, HttpContext http, SendEngineDbContext db, WakeSignal<BounceMailboxSupervisor> signal,
                CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var deleted = await db.Set<BounceMailbox>().Where(m => m.TenantId == tenantId && m.Id == mailboxId).ExecuteDeleteAsync(ct);
                if (deleted > 0)
                {
                    var key = mailboxId.ToString("N");
                    await db.Set<BounceMailboxStatus>().Where(s => s.MailboxKey == key).ExecuteDeleteAsync(ct);
                    await db.Set<BounceMessage>().Where(m => m.MailboxKey == key).ExecuteDeleteAsync(ct);
                }
                signal.Notify();
                return deleted == 0 ? NotFound() : Results.NoContent();
            })
            .WithName(Name("delete", "BounceMailbox")).WithSummary("Stop reading a mailbox and forget its settings (its messages stay on the server).")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(StatusCodes.Status404NotFound);
        g.MapGet("/{mailboxId:guid}/messages", async (Guid mailboxId, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                if (await FindAsync(db, tenantId, mailboxId, ct) is null)
                {
                    return NotFound();
                }
                var key = mailboxId.ToString("N");
                var rows = await db.Set<BounceMessage>().AsNoTracking().Where(m => m.MailboxKey == key && m.TenantId == tenantId)
                    .OrderByDescending(m => m.Id).Take(200).ToListAsync(ct);
                return Results.Ok(new BounceMessageList(rows.Select(m => new BounceMessageResponse(m.Id, m.UidValidity, m.Uid, m.ReportMessageId, m.Subject,
                    m.Outcome, m.Reason, m.Attempts, m.FirstSeenAt, m.UpdatedAt)).ToList()));
            })
            .WithName(Name("list", "BounceMailboxProblemMessages"))
            .WithSummary("The mailbox's last 200 messages that were moved to the unparsable folder or are being retried, with the reason.")
            .Produces<BounceMessageList>().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPost("/{mailboxId:guid}/verify", async (Guid mailboxId, HttpContext http, SendEngineDbContext db, BounceMailboxSecretProtector secrets,
                ProviderVerifier verifier, IOptions<BounceMailboxOptions> options, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var m = await db.Set<BounceMailbox>().FirstOrDefaultAsync(x => x.TenantId == tenantId && x.Id == mailboxId, ct);
                if (m is null)
                {
                    return NotFound();
                }
                var before = ToResponse(m, []);
                string? password;
                try
                {
                    password = secrets.Unprotect(m.Id, m.Password);
                }
                catch (System.Security.Cryptography.CryptographicException)
                {
                    password = null;
                }
                var result = password is null
                    ? new CheckResult(false, "The stored password cannot be decrypted with this configuration; enter it again.")
                    : await verifier.ImapAsync(m.Host, m.Port, BounceMailboxSupervisor.SocketOptions(m.Tls), m.Username, password, m.Folder,
                        m.AllowInvalidCertificate, options.Value.AllowPrivateNetworks, ct);
                m.CheckStatus = result.Status;
                m.CheckedAt = clock.GetUtcNow();
                m.CheckDetail = result.Detail.Length > 2000 ? result.Detail[..2000] : result.Detail;
                await db.SaveChangesAsync(ct);
                var after = ToResponse(m, await StatusesAsync(db, [m], ct));
                log.Describe(before, after);
                return Results.Ok(after);
            })
            .WithName(Name("verify", "BounceMailbox"))
            .WithSummary("Check the mailbox live (connect, TLS, LOGIN, SELECT of its folder) and store the result with the server's answer.")
            .Produces<BounceMailboxResponse>().ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> CreateAsync(Guid tenantId, CreateBounceMailboxRequest r, string basePath, SendEngineDbContext db,
        BounceMailboxSecretProtector secrets, BounceMailboxOptions options, IHostEnvironment environment, WakeSignal<BounceMailboxSupervisor> signal,
        TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation().Required("host", r.Host).Required("username", r.Username).Required("password", r.Password);
        var tls = BounceMailboxTlsNames.Normalise(r.Tls ?? BounceMailboxTls.SslOnConnect);
        var port = r.Port ?? (tls == BounceMailboxTls.SslOnConnect ? 993 : 143);
        var folder = (r.Folder ?? "INBOX").Trim();
        var processed = (r.ProcessedFolder ?? "Processed").Trim();
        var unparsable = (r.UnparsableFolder ?? "Unparsable").Trim();
        Check(v, r.Host, port, r.Tls, tls, r.Username, r.Password, folder, processed, unparsable, r.AllowInvalidCertificate, options, environment);
        if (v.IsValid && await HostErrorAsync(r.Host!.Trim(), options.AllowPrivateNetworks, ct) is { } hostError)
        {
            v.Add("host", hostError);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (await db.Set<BounceMailbox>().CountAsync(m => m.TenantId == tenantId, ct) >= options.MaxMailboxesPerTenant)
        {
            return TypedResults.ValidationProblem(new Validation().Add("host", $"A tenant has at most {options.MaxMailboxesPerTenant} bounce mailboxes.").Errors);
        }
        var now = clock.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var mailbox = new BounceMailbox
        {
            Id = id, TenantId = tenantId, Host = r.Host!.Trim().ToLowerInvariant(), Port = port, Tls = tls!, Username = r.Username!.Trim(),
            Password = secrets.Protect(id, r.Password!), Folder = folder, ProcessedFolder = processed, UnparsableFolder = unparsable,
            AllowInvalidCertificate = r.AllowInvalidCertificate ?? false, Enabled = r.Enabled ?? true, CreatedAt = now, UpdatedAt = now,
        };
        db.Add(mailbox);
        await db.SaveChangesAsync(ct);
        signal.Notify();
        var response = ToResponse(mailbox, []);
        log.Describe(null, response);
        return TypedResults.Created($"{basePath}/{id}", response);
    }

    private static async Task<IResult> UpdateAsync(Guid tenantId, Guid mailboxId, UpdateBounceMailboxRequest r, SendEngineDbContext db,
        BounceMailboxSecretProtector secrets, BounceMailboxOptions options, IHostEnvironment environment, WakeSignal<BounceMailboxSupervisor> signal,
        TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var m = await db.Set<BounceMailbox>().FirstOrDefaultAsync(x => x.TenantId == tenantId && x.Id == mailboxId, ct);
        if (m is null)
        {
            return NotFound();
        }
        var before = ToResponse(m, []);
        var v = new Validation();
        var tls = r.Tls is null ? m.Tls : BounceMailboxTlsNames.Normalise(r.Tls);
        var host = r.Host?.Trim() ?? m.Host;
        var folder = r.Folder?.Trim() ?? m.Folder;
        var processed = r.ProcessedFolder?.Trim() ?? m.ProcessedFolder;
        var unparsable = r.UnparsableFolder?.Trim() ?? m.UnparsableFolder;
        Check(v, host, r.Port ?? m.Port, r.Tls ?? m.Tls, tls, r.Username ?? m.Username, r.Password ?? "unchanged", folder, processed, unparsable,
            r.AllowInvalidCertificate, options, environment);
        if (v.IsValid && r.Host is not null && await HostErrorAsync(host, options.AllowPrivateNetworks, ct) is { } hostError)
        {
            v.Add("host", hostError);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (r.Host is not null || r.Port is not null || r.Tls is not null || r.Username is not null || r.Password is not null || r.Folder is not null)
        {
            // What was checked is not what is stored any more.
            m.CheckStatus = VerificationStatuses.Unverified;
            m.CheckedAt = null;
            m.CheckDetail = null;
        }
        m.Host = host.ToLowerInvariant();
        m.Port = r.Port ?? m.Port;
        m.Tls = tls!;
        m.Username = r.Username?.Trim() ?? m.Username;
        if (r.Password is not null)
        {
            m.Password = secrets.Protect(m.Id, r.Password);
        }
        m.Folder = folder;
        m.ProcessedFolder = processed;
        m.UnparsableFolder = unparsable;
        m.AllowInvalidCertificate = r.AllowInvalidCertificate ?? m.AllowInvalidCertificate;
        m.Enabled = r.Enabled ?? m.Enabled;
        m.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        signal.Notify();
        var after = ToResponse(m, await StatusesAsync(db, [m], ct));
        log.Describe(before, after);
        return Results.Ok(after);
    }

    private static void Check(Validation v, string? host, int port, string? tlsGiven, string? tls, string? username, string? password,
        string folder, string processed, string unparsable, bool? allowInvalid, BounceMailboxOptions options, IHostEnvironment environment)
    {
        v.MaxLength("host", host, 253).MaxLength("username", username, 320).MaxLength("password", password, 1000)
            .MaxLength("folder", folder, 200).MaxLength("processed_folder", processed, 200).MaxLength("unparsable_folder", unparsable, 200);
        if (host is { Length: > 0 } && (Uri.CheckHostName(host.Trim()) == UriHostNameType.Unknown))
        {
            v.Add("host", "The host must be a host name or an IP address.");
        }
        if (port is < 1 or > 65535)
        {
            v.Add("port", "The port must be between 1 and 65535.");
        }
        if (tls is null)
        {
            v.Add("tls", $"Unknown TLS mode '{tlsGiven}'; known: {string.Join(", ", BounceMailboxTls.All)}.");
        }
        if (folder.Length == 0)
        {
            v.Add("folder", "The folder must not be empty.");
        }
        if (processed.Length == 0 || processed == folder)
        {
            v.Add("processed_folder", "The processed folder must be set and differ from the folder.");
        }
        if (unparsable.Length == 0 || unparsable == folder)
        {
            v.Add("unparsable_folder", "The unparsable folder must be set and differ from the folder.");
        }
        if (allowInvalid == true && !environment.IsDevelopment())
        {
            v.Add("allow_invalid_certificate", "Invalid certificates are accepted in Development only.");
        }
        if (tls == BounceMailboxTls.None && !options.AllowPrivateNetworks)
        {
            // A password over an unencrypted connection across the internet: only for a server next to Send Engine.
            v.Add("tls", "tls none is allowed only where BounceMailboxes:AllowPrivateNetworks is set (a server on a closed network).");
        }
    }

    /// <summary>Refuses hosts that are, or resolve only to, non-public addresses (unless private networks are allowed).</summary>
    internal static async Task<string?> HostErrorAsync(string host, bool allowPrivateNetworks, CancellationToken ct)
    {
        if (allowPrivateNetworks)
        {
            return null;
        }
        if (IPAddress.TryParse(host, out var literal))
        {
            return WebhookTargetGuard.IsPublic(literal) ? null : $"The address {literal} is not a public address.";
        }
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return "The host is not a public address.";
        }
        try
        {
            var addresses = await Dns.GetHostAddressesAsync(host, ct);
            return addresses.Length > 0 && !addresses.Any(WebhookTargetGuard.IsPublic) ? "The host resolves to no public address." : null;
        }
        catch (System.Net.Sockets.SocketException)
        {
            // Not resolvable now: accepted; the reader checks again at every connection and reports the error.
            return null;
        }
    }

    private static async Task<Dictionary<string, (BounceMailboxStatus? Status, long Retrying)>> StatusesAsync(SendEngineDbContext db, IReadOnlyList<BounceMailbox> rows, CancellationToken ct)
    {
        var keys = rows.Select(r => r.Id.ToString("N")).ToList();
        var statuses = await db.Set<BounceMailboxStatus>().AsNoTracking().Where(s => keys.Contains(s.MailboxKey)).ToListAsync(ct);
        var retrying = await db.Set<BounceMessage>().AsNoTracking().Where(m => keys.Contains(m.MailboxKey) && m.Outcome == BounceMessageOutcomes.Retrying)
            .GroupBy(m => m.MailboxKey).Select(g => new { g.Key, Count = g.LongCount() }).ToListAsync(ct);
        return keys.ToDictionary(k => k, k => (statuses.FirstOrDefault(s => s.MailboxKey == k), retrying.FirstOrDefault(r => r.Key == k)?.Count ?? 0));
    }

    private static Task<BounceMailbox?> FindAsync(SendEngineDbContext db, Guid tenantId, Guid mailboxId, CancellationToken ct) =>
        db.Set<BounceMailbox>().AsNoTracking().FirstOrDefaultAsync(m => m.TenantId == tenantId && m.Id == mailboxId, ct);

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Bounce mailbox not found");


    private static BounceMailboxStatusResponse ToStatus(BounceMailboxStatus? s, long retrying) => new(s?.LastConnectedAt, s?.LastCheckedAt, s?.LastError,
        s?.LastErrorAt, s?.Processed ?? 0, s?.Ignored ?? 0, s?.Unmatched ?? 0, s?.Unparsable ?? 0, retrying);

    private static BounceMailboxResponse ToResponse(BounceMailbox m, Dictionary<string, (BounceMailboxStatus? Status, long Retrying)> statuses)
    {
        var (status, retrying) = statuses.GetValueOrDefault(m.Id.ToString("N"));
        return new BounceMailboxResponse(m.Id.ToString(), m.TenantId.ToString(), m.Host, m.Port, m.Tls, m.Username, m.Folder, m.ProcessedFolder,
            m.UnparsableFolder, m.AllowInvalidCertificate, m.Enabled, m.CreatedAt, m.UpdatedAt, ToStatus(status, retrying),
            new VerificationResponse(m.CheckStatus, m.CheckedAt, m.CheckDetail));
    }
}
