using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.ProviderCredentials;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;
using SendEngine.Data;
using SendEngine.Features.BounceMailboxes;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>
/// Tenants' own SMTP relays and Tencent SES accounts: /api/provider-credentials (reads: newsletter:send.read or
/// newsletter:webhooks, so viewers see them; changes and checks: newsletter:webhooks, admins and owners) and the same for
/// operators (platform:admin) under /admin/tenants/{tenant_id}/provider-credentials. Secrets are write-only. Another
/// tenant's credential is a 404. Created unverified; POST …/{id}/verify checks it live and stores the answer.
/// </summary>
public static class ProviderCredentialsApi
{
    public const string ReadPolicy = "provider-credentials:read";

    public static IEndpointRouteBuilder MapProviderCredentialsApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/provider-credentials").WithTags("Provider credentials");
        Map(tenant, "", user => user.TenantId(), ReadPolicy, Webhooks.WebhookEndpointsApi.TenantPolicy);
        var admin = app.MapGroup("/admin/tenants/{tenant_id:guid}/provider-credentials").WithTags("Provider credentials (admin)");
        Map(admin, "admin", null, Extensions.AuthExtensions.Admin, Extensions.AuthExtensions.Admin);
        return app;
    }

    private static void Map(RouteGroupBuilder g, string prefix, Func<ClaimsPrincipal, Guid>? tenantOf, string read, string write)
    {
        Guid Tenant(HttpContext http) => tenantOf?.Invoke(http.User) ?? Guid.Parse((string)http.Request.RouteValues["tenant_id"]!);
        string Name(string verb, string noun) => prefix.Length == 0 ? verb + noun : prefix + char.ToUpperInvariant(verb[0]) + verb[1..] + noun;
        var who = prefix.Length == 0 ? "the tenant's" : "a tenant's";

        g.MapGet("/", async (HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var rows = await db.Set<ProviderCredential>().AsNoTracking().Where(c => c.TenantId == tenantId).OrderBy(c => c.CreatedAt).ToListAsync(ct);
                return TypedResults.Ok(new ProviderCredentialList(rows.Select(ToResponse).ToList()));
            })
            .RequireAuthorization(read)
            .WithName(Name("list", "ProviderCredentials")).WithSummary($"List {who} SMTP relays and Tencent SES accounts with their last check (never their secrets).");
        g.MapPost("/", (CreateProviderCredentialRequest request, HttpContext http, SendEngineDbContext db, ProviderSecretProtector secrets,
                IOptions<ProviderCredentialOptions> options, TenantProviders providers, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                CreateAsync(Tenant(http), request, prefix.Length == 0 ? "/api/provider-credentials" : $"/admin/tenants/{Tenant(http)}/provider-credentials",
                    db, secrets, options.Value, providers, clock, log, ct))
            .RequireAuthorization(write)
            .WithName(Name("create", "ProviderCredential"))
            .WithSummary($"Add an SMTP relay or Tencent SES account to {who} providers, unverified; the secret is stored encrypted and never returned.")
            .Produces<ProviderCredentialResponse>(StatusCodes.Status201Created).ProducesValidationProblem();
        g.MapGet("/{credentialId:guid}", async (Guid credentialId, HttpContext http, SendEngineDbContext db, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                return await db.Set<ProviderCredential>().AsNoTracking().FirstOrDefaultAsync(c => c.TenantId == tenantId && c.Id == credentialId, ct) is { } c
                    ? Results.Ok(ToResponse(c)) : NotFound();
            })
            .RequireAuthorization(read)
            .WithName(Name("get", "ProviderCredential")).WithSummary("Read one provider credential: settings, active, the last check and the server's answer.")
            .Produces<ProviderCredentialResponse>().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPatch("/{credentialId:guid}", (Guid credentialId, UpdateProviderCredentialRequest request, HttpContext http, SendEngineDbContext db,
                ProviderSecretProtector secrets, TenantProviders providers, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                UpdateAsync(Tenant(http), credentialId, request, db, secrets, providers, clock, log, ct))
            .RequireAuthorization(write)
            .WithName(Name("update", "ProviderCredential"))
            .WithSummary("Rename, activate or deactivate, or replace the login or secret (which makes it unverified until checked again).")
            .Produces<ProviderCredentialResponse>().ProducesValidationProblem().ProducesProblem(StatusCodes.Status404NotFound);
        g.MapDelete("/{credentialId:guid}", async (Guid credentialId, HttpContext http, SendEngineDbContext db, TenantProviders providers,
                IOperationLog log, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var c = await db.Set<ProviderCredential>().FirstOrDefaultAsync(x => x.TenantId == tenantId && x.Id == credentialId, ct);
                if (c is null)
                {
                    return NotFound();
                }
                db.Remove(c);
                await db.SaveChangesAsync(ct);
                providers.Invalidate(tenantId);
                log.Describe(ToResponse(c), null);
                return Results.NoContent();
            })
            .RequireAuthorization(write)
            .WithName(Name("delete", "ProviderCredential")).WithSummary("Forget a provider credential; the tenant's mail goes through the platform's provider if it was in use.")
            .Produces(StatusCodes.Status204NoContent).ProducesProblem(StatusCodes.Status404NotFound);
        g.MapPost("/{credentialId:guid}/verify", async (Guid credentialId, HttpContext http, SendEngineDbContext db, ProviderSecretProtector secrets,
                ProviderVerifier verifier, TenantProviders providers, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
            {
                var tenantId = Tenant(http);
                var c = await db.Set<ProviderCredential>().FirstOrDefaultAsync(x => x.TenantId == tenantId && x.Id == credentialId, ct);
                if (c is null)
                {
                    return NotFound();
                }
                var before = ToResponse(c);
                string? secret;
                try
                {
                    secret = c.Secret is { } s ? secrets.Unprotect(c.Id, s) : null;
                }
                catch (System.Security.Cryptography.CryptographicException)
                {
                    secret = null;
                }
                var result = c.Secret is not null && secret is null
                    ? new CheckResult(false, "The stored secret cannot be decrypted with Send Engine's key ring (data_protection_keys); enter it again.")
                    : c.Kind == ProviderKinds.Tencent
                    ? await verifier.TencentAsync(c.Username!, secret ?? "", c.Region!, c.Endpoint!, ct)
                    : await verifier.SmtpAsync(c.Host!, c.Port!.Value, c.Tls!, c.Username, secret, ct);
                c.Status = result.Status;
                c.CheckedAt = clock.GetUtcNow();
                c.CheckDetail = Truncate(result.Detail, 2000);
                await db.SaveChangesAsync(ct);
                providers.Invalidate(tenantId);
                var after = ToResponse(c);
                log.Describe(before, after);
                return Results.Ok(after);
            })
            .RequireAuthorization(write)
            .WithName(Name("verify", "ProviderCredential"))
            .WithSummary("Check the credential live (SMTP: connect, TLS, EHLO, AUTH; Tencent: a signed ListEmailIdentities call) and store the result with the server's answer.")
            .Produces<ProviderCredentialResponse>().ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> CreateAsync(Guid tenantId, CreateProviderCredentialRequest r, string basePath, SendEngineDbContext db,
        ProviderSecretProtector secrets, ProviderCredentialOptions options, TenantProviders providers, TimeProvider clock, IOperationLog log,
        CancellationToken ct)
    {
        var v = new Validation().Required("kind", r.Kind).Required("name", r.Name).MaxLength("name", r.Name?.Trim(), 200);
        var kind = r.Kind?.Trim().ToLowerInvariant();
        if (kind is not null && !ProviderKinds.All.Contains(kind))
        {
            v.Add("kind", $"Unknown kind '{r.Kind}'; known: {string.Join(", ", ProviderKinds.All)}.");
        }
        var now = clock.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var c = new ProviderCredential
        {
            Id = id, TenantId = tenantId, Kind = kind ?? "", Name = r.Name?.Trim() ?? "", Active = r.Active ?? false,
            Status = VerificationStatuses.Unverified, CreatedAt = now, UpdatedAt = now,
        };
        string? secret = null;
        if (kind == ProviderKinds.Smtp)
        {
            var tls = (r.Tls ?? SmtpTlsModes.StartTls).Trim().ToLowerInvariant();
            var port = r.Port ?? (tls == SmtpTlsModes.Tls ? 465 : tls == SmtpTlsModes.None ? 25 : 587);
            v.Required("host", r.Host).MaxLength("host", r.Host, 253).MaxLength("username", r.Username, 320).MaxLength("password", r.Password, 1000);
            if (r.Host is { Length: > 0 } h && Uri.CheckHostName(h.Trim()) == UriHostNameType.Unknown)
            {
                v.Add("host", "The host must be a host name or an IP address.");
            }
            if (port is < 1 or > 65535)
            {
                v.Add("port", "The port must be between 1 and 65535.");
            }
            if (!SmtpTlsModes.All.Contains(tls))
            {
                v.Add("tls", $"Unknown TLS mode '{r.Tls}'; known: {string.Join(", ", SmtpTlsModes.All)}.");
            }
            else if (tls == SmtpTlsModes.None && !options.AllowPrivateNetworks)
            {
                v.Add("tls", "tls none would send the password and the mail unencrypted; it is allowed only where ProviderCredentials:AllowPrivateNetworks is set.");
            }
            if (string.IsNullOrWhiteSpace(r.Username) != string.IsNullOrEmpty(r.Password))
            {
                v.Add("password", "Give both username and password, or neither (a relay without AUTH).");
            }
            if (v.IsValid && await BounceMailboxesApi.HostErrorAsync(r.Host!.Trim(), options.AllowPrivateNetworks, ct) is { } hostError)
            {
                v.Add("host", hostError);
            }
            c.Host = r.Host?.Trim().ToLowerInvariant();
            c.Port = port;
            c.Tls = tls;
            c.Username = string.IsNullOrWhiteSpace(r.Username) ? null : r.Username.Trim();
            secret = string.IsNullOrEmpty(r.Password) ? null : r.Password;
        }
        else if (kind == ProviderKinds.Tencent)
        {
            v.Required("secret_id", r.SecretId).Required("secret_key", r.SecretKey).MaxLength("secret_id", r.SecretId, 200).MaxLength("secret_key", r.SecretKey, 200);
            var region = (r.Region ?? "ap-guangzhou").Trim();
            if (region.Length is 0 or > 64 || !region.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '-'))
            {
                v.Add("region", "The region is a Tencent Cloud region such as ap-guangzhou or ap-hongkong.");
            }
            var endpoint = (r.Endpoint ?? "https://ses.tencentcloudapi.com").Trim();
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || uri.PathAndQuery != "/" || uri.UserInfo.Length > 0)
            {
                v.Add("endpoint", "The endpoint must be an absolute URL without path, such as https://ses.tencentcloudapi.com.");
            }
            else if (!options.AllowEndpointOverride && (uri.Scheme != "https" || !uri.Host.EndsWith(".tencentcloudapi.com", StringComparison.OrdinalIgnoreCase)))
            {
                v.Add("endpoint", "The endpoint must be an https://….tencentcloudapi.com address.");
            }
            c.Username = r.SecretId?.Trim();
            c.Region = region;
            c.Endpoint = endpoint.TrimEnd('/');
            secret = r.SecretKey;
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (await db.Set<ProviderCredential>().CountAsync(x => x.TenantId == tenantId, ct) >= options.MaxPerTenant)
        {
            return TypedResults.ValidationProblem(new Validation().Add("kind", $"A tenant has at most {options.MaxPerTenant} provider credentials.").Errors);
        }
        c.Secret = secret is null ? null : secrets.Protect(id, secret);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (c.Active)
        {
            await db.Set<ProviderCredential>().Where(x => x.TenantId == tenantId && x.Active).ExecuteUpdateAsync(u => u.SetProperty(x => x.Active, false), ct);
        }
        db.Add(c);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        providers.Invalidate(tenantId);
        var response = ToResponse(c);
        log.Describe(null, response);
        return TypedResults.Created($"{basePath}/{id}", response);
    }

    private static async Task<IResult> UpdateAsync(Guid tenantId, Guid credentialId, UpdateProviderCredentialRequest r, SendEngineDbContext db,
        ProviderSecretProtector secrets, TenantProviders providers, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var c = await db.Set<ProviderCredential>().FirstOrDefaultAsync(x => x.TenantId == tenantId && x.Id == credentialId, ct);
        if (c is null)
        {
            return NotFound();
        }
        var before = ToResponse(c);
        var v = new Validation().MaxLength("name", r.Name, 200).MaxLength("username", r.Username, 320).MaxLength("password", r.Password, 1000)
            .MaxLength("secret_id", r.SecretId, 200).MaxLength("secret_key", r.SecretKey, 200);
        if (r.Name is not null && r.Name.Trim().Length == 0)
        {
            v.Add("name", "The name must not be empty.");
        }
        var tencent = c.Kind == ProviderKinds.Tencent;
        if (tencent ? r.Username is not null || r.Password is not null : r.SecretId is not null || r.SecretKey is not null)
        {
            v.Add(tencent ? "username" : "secret_id", tencent ? "A Tencent account has secret_id and secret_key." : "An SMTP relay has username and password.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var login = tencent ? r.SecretId : r.Username;
        var secret = tencent ? r.SecretKey : r.Password;
        if (login is not null || secret is not null)
        {
            // New credentials have not been checked: not used for mail until verified again.
            c.Username = login?.Trim() ?? c.Username;
            if (secret is not null)
            {
                c.Secret = secrets.Protect(c.Id, secret);
            }
            c.Status = VerificationStatuses.Unverified;
            c.CheckDetail = null;
            c.CheckedAt = null;
        }
        c.Name = r.Name?.Trim() ?? c.Name;
        c.UpdatedAt = clock.GetUtcNow();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (r.Active == true && !c.Active)
        {
            await db.Set<ProviderCredential>().Where(x => x.TenantId == tenantId && x.Active).ExecuteUpdateAsync(u => u.SetProperty(x => x.Active, false), ct);
        }
        c.Active = r.Active ?? c.Active;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        providers.Invalidate(tenantId);
        var after = ToResponse(c);
        log.Describe(before, after);
        return Results.Ok(after);
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Provider credential not found");

    private static string? Shorten(string? id) => id is null ? null : id.Length <= 10 ? new string('•', id.Length) : $"{id[..4]}…{id[^4..]}";

    public static ProviderCredentialResponse ToResponse(ProviderCredential c)
    {
        var tencent = c.Kind == ProviderKinds.Tencent;
        return new ProviderCredentialResponse(c.Id.ToString(), c.TenantId.ToString(), c.Kind, c.Name, c.Host, c.Port, c.Tls,
            tencent ? null : c.Username, tencent ? Shorten(c.Username) : null, c.Region, c.Endpoint, c.Active,
            c.Active && c.Status == VerificationStatuses.Verified, new VerificationResponse(c.Status, c.CheckedAt, c.CheckDetail), c.CreatedAt, c.UpdatedAt);
    }
}
