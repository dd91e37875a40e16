using System.Security.Claims;
using MemberCenter.Data;
using MemberCenter.Extensions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts.ApiKeys;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.OperationLog;

namespace MemberCenter.Features.ApiKeys;

/// <summary>
/// Applications and X-Pigeon-Api-Key keys (seed 003 chapter 2): the tenant's own routes (/api/applications,
/// newsletter:api_keys.* scopes), the same under /admin/tenants/{tenant_id}/applications (platform:admin), and the
/// verification Send Engine calls (/internal/api-keys/verify).
/// </summary>
public static class ApiKeysApi
{
    public static IEndpointRouteBuilder MapApiKeysApi(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/applications").WithTags("Applications and API keys");
        tenant.MapPost("/", (CreateApplicationRequest request, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                CreateApplication(user.TenantId(), request, store, "/api/applications", ct))
            .RequireAuthorization(Policies.ApiKeysWrite).WithName("createApplication").WithSummary("Create an application (email channel enabled).");
        tenant.MapGet("/", (ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) => ListApplications(user.TenantId(), store, ct))
            .RequireAuthorization(Policies.ApiKeysRead).WithName("listApplications").WithSummary("The caller's applications, oldest first.");
        tenant.MapGet("/{applicationId:guid}", (Guid applicationId, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                GetApplication(user.TenantId(), applicationId, store, ct))
            .RequireAuthorization(Policies.ApiKeysRead).WithName("getApplication").WithSummary("One application.");
        tenant.MapDelete("/{applicationId:guid}", (Guid applicationId, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                DeleteApplication(user.TenantId(), applicationId, store, ct))
            .RequireAuthorization(Policies.ApiKeysWrite).WithName("deleteApplication").WithSummary("Delete an application; its keys answer EXPIRED_API_KEY.");
        tenant.MapPost("/{applicationId:guid}/keys", (Guid applicationId, CreateApiKeyRequest request, ClaimsPrincipal user, ApiKeyStore store, IOperationLog log, CancellationToken ct) =>
                CreateKey(user.TenantId(), applicationId, request, store, "/api/applications", log, ct))
            .RequireAuthorization(Policies.ApiKeysWrite).WithName("createApiKey").WithSummary("Create an API key; the key is in this answer only.");
        tenant.MapGet("/{applicationId:guid}/keys", (Guid applicationId, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                ListKeys(user.TenantId(), applicationId, store, ct))
            .RequireAuthorization(Policies.ApiKeysRead).WithName("listApiKeys").WithSummary("The application's keys (prefixes only), oldest first.");
        tenant.MapDelete("/{applicationId:guid}/keys/{keyId:guid}", (Guid applicationId, Guid keyId, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                DeleteKey(user.TenantId(), applicationId, keyId, store, ct))
            .RequireAuthorization(Policies.ApiKeysWrite).WithName("deleteApiKey").WithSummary("Delete an API key; it answers EXPIRED_API_KEY from then on.");
        tenant.MapPost("/{applicationId:guid}/keys/{keyId:guid}/rotate",
                (Guid applicationId, Guid keyId, RotateApiKeyRequest? request, ClaimsPrincipal user, ApiKeyStore store, CancellationToken ct) =>
                RotateKey(user.TenantId(), applicationId, keyId, request, store, "/api/applications", ct))
            .RequireAuthorization(Policies.ApiKeysWrite).WithName("rotateApiKey").WithSummary("Replace an API key; the old one keeps working for the overlap.");

        var admin = app.MapGroup("/admin/tenants/{tenantId:guid}/applications").WithTags("Admin").RequireAuthorization(Policies.Admin);
        admin.MapPost("/", AdminCreateApplication)
            .WithName("adminCreateApplication").WithSummary("Create an application for a tenant.");
        admin.MapGet("/", AdminListApplications)
            .WithName("adminListApplications").WithSummary("A tenant's applications, oldest first.");
        admin.MapGet("/{applicationId:guid}", (Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
                GetApplication(tenantId, applicationId, store, ct))
            .WithName("adminGetApplication").WithSummary("One application of a tenant.");
        admin.MapDelete("/{applicationId:guid}", (Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
                DeleteApplication(tenantId, applicationId, store, ct))
            .WithName("adminDeleteApplication").WithSummary("Delete a tenant's application; its keys answer EXPIRED_API_KEY.");
        admin.MapPost("/{applicationId:guid}/keys", (Guid tenantId, Guid applicationId, CreateApiKeyRequest request, ApiKeyStore store, IOperationLog log, CancellationToken ct) =>
                CreateKey(tenantId, applicationId, request, store, $"/admin/tenants/{tenantId}/applications", log, ct))
            .WithName("adminCreateApiKey").WithSummary("Create an API key for a tenant's application; the key is in this answer only.");
        admin.MapGet("/{applicationId:guid}/keys", (Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
                ListKeys(tenantId, applicationId, store, ct))
            .WithName("adminListApiKeys").WithSummary("A tenant application's keys (prefixes only).");
        admin.MapDelete("/{applicationId:guid}/keys/{keyId:guid}", (Guid tenantId, Guid applicationId, Guid keyId, ApiKeyStore store, CancellationToken ct) =>
                DeleteKey(tenantId, applicationId, keyId, store, ct))
            .WithName("adminDeleteApiKey").WithSummary("Delete a tenant's API key.");
        admin.MapPost("/{applicationId:guid}/keys/{keyId:guid}/rotate",
                (Guid tenantId, Guid applicationId, Guid keyId, RotateApiKeyRequest? request, ApiKeyStore store, CancellationToken ct) =>
                RotateKey(tenantId, applicationId, keyId, request, store, $"/admin/tenants/{tenantId}/applications", ct))
            .WithName("adminRotateApiKey").WithSummary("Replace a tenant's API key; the old one keeps working for the overlap.");

        app.MapPost("/internal/api-keys/verify", Verify).WithTags("Internal (Send Engine)").RequireAuthorization(Policies.InternalApiKeys)
            .WithName("verifyApiKey").WithSummary("Who an API key (by its SHA-256) belongs to, or that it is expired, deleted or unknown.");
        return app;
    }

    private static async Task<Results<Created<ApplicationResponse>, ValidationProblem>> CreateApplication(
        Guid tenantId, CreateApplicationRequest request, ApiKeyStore store, string basePath, CancellationToken ct)
    {
        var result = await store.CreateApplicationAsync(tenantId, request, ct);
        return result.Value is { } app ? TypedResults.Created($"{basePath}/{app.ApplicationId}", app) : TypedResults.ValidationProblem(result.Errors!);
    }

    private static async Task<Results<Created<ApplicationResponse>, ValidationProblem, ProblemHttpResult>> AdminCreateApplication(
        Guid tenantId, CreateApplicationRequest request, MemberCenterDbContext db, ApiKeyStore store, CancellationToken ct)
    {
        if (!await TenantExistsAsync(db, tenantId, ct))
        {
            return TenantNotFound();
        }
        var result = await store.CreateApplicationAsync(tenantId, request, ct);
        return result.Value is { } app
            ? TypedResults.Created($"/admin/tenants/{tenantId}/applications/{app.ApplicationId}", app)
            : TypedResults.ValidationProblem(result.Errors!);
    }

    private static async Task<Results<Ok<List<ApplicationResponse>>, ProblemHttpResult>> AdminListApplications(
        Guid tenantId, MemberCenterDbContext db, ApiKeyStore store, CancellationToken ct) =>
        await TenantExistsAsync(db, tenantId, ct) ? TypedResults.Ok(await store.ListApplicationsAsync(tenantId, ct)) : TenantNotFound();

    private static async Task<Ok<List<ApplicationResponse>>> ListApplications(Guid tenantId, ApiKeyStore store, CancellationToken ct) =>
        TypedResults.Ok(await store.ListApplicationsAsync(tenantId, ct));

    private static async Task<Results<Ok<ApplicationResponse>, ProblemHttpResult>> GetApplication(Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
        await store.GetApplicationAsync(tenantId, applicationId, ct) is { } app ? TypedResults.Ok(app) : ApplicationNotFound();

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteApplication(Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
        await store.DeleteApplicationAsync(tenantId, applicationId, ct) ? TypedResults.NoContent() : ApplicationNotFound();

    private static async Task<Results<Created<ApiKeySecretResponse>, ValidationProblem, ProblemHttpResult>> CreateKey(
        Guid tenantId, Guid applicationId, CreateApiKeyRequest request, ApiKeyStore store, string basePath, IOperationLog log, CancellationToken ct)
    {
        var result = await store.CreateKeyAsync(tenantId, applicationId, request, ct);
        // The redactor drops api_key; the key id and prefix stay.
        log.Describe(null, result.Value);
        return result switch
        {
            { Value: { } key } => TypedResults.Created($"{basePath}/{applicationId}/keys/{key.KeyId}", key),
            { Errors: { } errors } => TypedResults.ValidationProblem(errors),
            { Conflict: { } conflict } => TypedResults.Problem(statusCode: 409, title: "Too many keys", detail: conflict),
            _ => ApplicationNotFound(),
        };
    }

    private static async Task<Results<Ok<List<ApiKeyResponse>>, ProblemHttpResult>> ListKeys(Guid tenantId, Guid applicationId, ApiKeyStore store, CancellationToken ct) =>
        await store.ListKeysAsync(tenantId, applicationId, ct) is { } keys ? TypedResults.Ok(keys) : ApplicationNotFound();

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteKey(Guid tenantId, Guid applicationId, Guid keyId, ApiKeyStore store, CancellationToken ct) =>
        await store.DeleteKeyAsync(tenantId, applicationId, keyId, ct) ? TypedResults.NoContent() : KeyNotFound();

    private static async Task<Results<Created<ApiKeyRotationResponse>, ValidationProblem, ProblemHttpResult>> RotateKey(
        Guid tenantId, Guid applicationId, Guid keyId, RotateApiKeyRequest? request, ApiKeyStore store, string basePath, CancellationToken ct)
    {
        var result = await store.RotateKeyAsync(tenantId, applicationId, keyId, request ?? new RotateApiKeyRequest(), ct);
        return result switch
        {
            { Value: { } rotated } => TypedResults.Created($"{basePath}/{applicationId}/keys/{rotated.Key.KeyId}", rotated),
            { Errors: { } errors } => TypedResults.ValidationProblem(errors),
            { Conflict: { } conflict } => TypedResults.Problem(statusCode: 409, title: "Too many keys", detail: conflict),
            _ => KeyNotFound(),
        };
    }

    private static async Task<Results<Ok<ApiKeyVerificationResponse>, ValidationProblem>> Verify(ApiKeyVerificationRequest request, ApiKeyStore store, CancellationToken ct)
    {
        if (request.KeyHash is not { Length: 64 } hash || hash.AsSpan().IndexOfAnyExcept("0123456789abcdef") >= 0)
        {
            return TypedResults.ValidationProblem(new Validation().Add("key_hash", "The key_hash must be 64 lowercase hex characters.").Errors);
        }
        return TypedResults.Ok(await store.VerifyAsync(hash, ct));
    }

    private static Task<bool> TenantExistsAsync(MemberCenterDbContext db, Guid tenantId, CancellationToken ct) => db.Tenants.AnyAsync(t => t.Id == tenantId, ct);

    private static ProblemHttpResult TenantNotFound() => TypedResults.Problem(statusCode: 404, title: "Tenant not found");
    private static ProblemHttpResult ApplicationNotFound() => TypedResults.Problem(statusCode: 404, title: "Application not found");
    private static ProblemHttpResult KeyNotFound() => TypedResults.Problem(statusCode: 404, title: "API key not found");
}
