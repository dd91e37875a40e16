using System.Security.Claims;
using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Extensions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;

namespace MemberCenter.Features.Reader;

/// <summary>
/// What readers see, configured: a list's preference fields and default language (next to the list routes), a
/// tenant's branding. Reading needs the lists read scope; changing them is a tenant-wide setting (newsletter:settings.write:
/// admins and owners, not editors); the platform admin has the same under /admin/tenants/{id}.
/// </summary>
public static class ReaderSettingsApi
{
    public static IEndpointRouteBuilder MapReaderSettingsApi(this IEndpointRouteBuilder app)
    {
        var lists = app.MapGroup("/api/lists").WithTags("Lists");
        lists.MapGet("/{listId:guid}/preference-fields", (Guid listId, ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct) =>
                GetFields(user.TenantId(), listId, db, ct))
            .RequireAuthorization(Policies.ListsRead).WithName("getListPreferenceFields")
            .WithSummary("A list's preference fields (type, choices, labels per language) and default language.");
        lists.MapPut("/{listId:guid}/preference-fields", (Guid listId, PreferenceFieldsRequest request, ClaimsPrincipal user, MemberCenterDbContext db,
                TimeProvider clock, IOperationLog log, CancellationToken ct) => PutFields(user.TenantId(), listId, request, db, clock, log, ct))
            .RequireAuthorization(Policies.SettingsWrite).WithName("putListPreferenceFields")
            .WithSummary("Replace a list's preference fields and default language; subscriber preferences are then checked against them.");

        var branding = app.MapGroup("/api/branding").WithTags("Branding");
        branding.MapGet("/", (ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct) => GetBranding(user.TenantId(), db, ct))
            .RequireAuthorization(Policies.ListsRead).WithName("getBranding")
            .WithSummary("The tenant's branding of reader pages and the confirmation mail.");
        branding.MapPut("/", (BrandingRequest request, ClaimsPrincipal user, MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
                PutBranding(user.TenantId(), request, db, clock, log, ct))
            .RequireAuthorization(Policies.SettingsWrite).WithName("putBranding")
            .WithSummary("Replace the tenant's branding: name, https logo, colours, footer with postal address, confirmation mail per language.");

        var admin = app.MapGroup("/admin/tenants/{tenantId:guid}").WithTags("Admin").RequireAuthorization(Policies.Admin);
        admin.MapGet("/lists/{listId:guid}/preference-fields", (Guid tenantId, Guid listId, MemberCenterDbContext db, CancellationToken ct) =>
                GetFields(tenantId, listId, db, ct))
            .WithName("getTenantListPreferenceFields").WithSummary("A tenant's list's preference fields and default language.");
        admin.MapPut("/lists/{listId:guid}/preference-fields", (Guid tenantId, Guid listId, PreferenceFieldsRequest request, MemberCenterDbContext db,
                TimeProvider clock, IOperationLog log, CancellationToken ct) => PutFields(tenantId, listId, request, db, clock, log, ct))
            .WithName("putTenantListPreferenceFields").WithSummary("Replace a tenant's list's preference fields and default language.");
        admin.MapGet("/branding", async Task<Results<Ok<BrandingResponse>, ProblemHttpResult>> (Guid tenantId, MemberCenterDbContext db, CancellationToken ct) =>
                await db.Tenants.AnyAsync(t => t.Id == tenantId, ct) ? await GetBranding(tenantId, db, ct) : TenantNotFound())
            .WithName("getTenantBranding").WithSummary("A tenant's branding.");
        admin.MapPut("/branding", async Task<Results<Ok<BrandingResponse>, ValidationProblem, ProblemHttpResult>> (Guid tenantId, BrandingRequest request,
                MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct) =>
            {
                if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
                {
                    return TenantNotFound();
                }
                log.ForTenant(tenantId);
                var result = await PutBranding(tenantId, request, db, clock, log, ct);
                return result.Result switch
                {
                    Ok<BrandingResponse> ok => ok,
                    ValidationProblem problem => problem,
                    _ => TenantNotFound(),
                };
            })
            .WithName("putTenantBranding").WithSummary("Replace a tenant's branding.");
        return app;
    }

    private static async Task<Results<Ok<PreferenceFieldsResponse>, ProblemHttpResult>> GetFields(Guid tenantId, Guid listId, MemberCenterDbContext db, CancellationToken ct)
    {
        if (!await db.MailingLists.AnyAsync(l => l.Id == listId && l.TenantId == tenantId, ct))
        {
            return Subscriptions.SubscriptionsApi.ListNotFound();
        }
        var row = await db.ListPreferenceFields.AsNoTracking().FirstOrDefaultAsync(f => f.ListId == listId, ct);
        return TypedResults.Ok(ToResponse(listId, row));
    }

    private static async Task<Results<Ok<PreferenceFieldsResponse>, ValidationProblem, ProblemHttpResult>> PutFields(Guid tenantId, Guid listId,
        PreferenceFieldsRequest request, MemberCenterDbContext db, TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation();
        var (defaultLanguage, fields) = ReaderSettingsValidation.Fields(request, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await db.MailingLists.AnyAsync(l => l.Id == listId && l.TenantId == tenantId, ct))
        {
            return Subscriptions.SubscriptionsApi.ListNotFound();
        }
        var row = await db.ListPreferenceFields.FirstOrDefaultAsync(f => f.ListId == listId, ct);
        var before = row is null ? null : ToResponse(listId, row);
        if (row is null)
        {
            row = new ListPreferenceFields { ListId = listId, DefaultLanguage = defaultLanguage };
            db.ListPreferenceFields.Add(row);
        }
        row.DefaultLanguage = defaultLanguage;
        row.Fields = JsonSerializer.Serialize(fields, ReaderJson.Options);
        row.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        var after = ToResponse(listId, row);
        log.Describe(before, after);
        return TypedResults.Ok(after);
    }

    private static async Task<Ok<BrandingResponse>> GetBranding(Guid tenantId, MemberCenterDbContext db, CancellationToken ct)
    {
        var row = await db.TenantBrandings.AsNoTracking().FirstOrDefaultAsync(b => b.TenantId == tenantId, ct);
        return TypedResults.Ok(ToResponse(tenantId, row));
    }

    private static async Task<Results<Ok<BrandingResponse>, ValidationProblem>> PutBranding(Guid tenantId, BrandingRequest request, MemberCenterDbContext db,
        TimeProvider clock, IOperationLog log, CancellationToken ct)
    {
        var v = new Validation();
        var next = ReaderSettingsValidation.Branding(tenantId, request, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var row = await db.TenantBrandings.FirstOrDefaultAsync(b => b.TenantId == tenantId, ct);
        var before = row is null ? null : ToResponse(tenantId, row);
        if (row is null)
        {
            row = new TenantBranding { TenantId = tenantId };
            db.TenantBrandings.Add(row);
        }
        row.DisplayName = next.DisplayName;
        row.LogoUrl = next.LogoUrl;
        row.PrimaryColor = next.PrimaryColor;
        row.AccentColor = next.AccentColor;
        row.FooterText = next.FooterText;
        row.PostalAddress = next.PostalAddress;
        row.ConfirmationMail = next.ConfirmationMail;
        row.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        var after = ToResponse(tenantId, row);
        log.Describe(before, after);
        return TypedResults.Ok(after);
    }

    internal static PreferenceFieldsResponse ToResponse(Guid listId, ListPreferenceFields? row) =>
        new(listId.ToString(), row?.DefaultLanguage ?? ReaderLanguages.English, row?.ParseFields() ?? [], row?.UpdatedAt);

    internal static BrandingResponse ToResponse(Guid tenantId, TenantBranding? row) =>
        new(tenantId.ToString(), row?.DisplayName, row?.LogoUrl, row?.PrimaryColor, row?.AccentColor, row?.FooterText, row?.PostalAddress,
            row?.ParseConfirmationMail() ?? [], row?.UpdatedAt);

    private static ProblemHttpResult TenantNotFound() => TypedResults.Problem(statusCode: 404, title: "Tenant not found");
}
