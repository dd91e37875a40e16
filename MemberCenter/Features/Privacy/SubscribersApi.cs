using System.Security.Claims;
using MemberCenter.Extensions;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Privacy;

/// <summary>Personal data of one address for the tenant: export (GDPR Art. 15, 20) and erasure (Art. 17), in both services.</summary>
public static class SubscribersApi
{
    public static IEndpointRouteBuilder MapSubscribersApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/subscribers").WithTags("Subscribers (personal data)");
        api.MapGet("/{email}/export", Export).RequireAuthorization(Policies.SubscriptionsWrite).WithName("exportSubscriber")
            .WithSummary("Everything both services hold about the address for your tenant, as JSON (503 while Send Engine cannot answer).");
        api.MapDelete("/{email}", Erase).RequireAuthorization(Policies.SubscriptionsWrite).WithName("eraseSubscriber")
            .WithSummary("Erase the address in both services: 202, Member Center's part done, Send Engine's queued until it acknowledges.");
        return app;
    }

    private static async Task<Results<Ok<SubscriberExport>, ValidationProblem, ProblemHttpResult>> Export(
        string email, ClaimsPrincipal user, HttpContext http, SubscriberDataService service, CancellationToken ct)
    {
        var v = new Validation();
        var address = SubscriptionsApi.ParseEmail(email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        try
        {
            var export = await service.ExportAsync(user.TenantId(), address, ct);
            // Another tenant's subscriber is as unknown as an address nobody holds.
            return export is null
                ? TypedResults.Problem(statusCode: 404, title: "Subscriber not found", detail: "Neither service holds data about this email for your tenant.")
                : TypedResults.Ok(export);
        }
        catch (SendEngineException ex) when (ex.IsTransient)
        {
            http.Response.Headers.RetryAfter = "30";
            return TypedResults.Problem(statusCode: 503, title: "Send Engine unavailable",
                detail: "Send Engine's part of the export cannot be read now, and an export without it would be incomplete; try again later.");
        }
    }

    private static async Task<Results<Accepted<ErasureResponse>, ValidationProblem>> Erase(
        string email, ClaimsPrincipal user, HttpContext http, SubscriberDataService service, CancellationToken ct)
    {
        var v = new Validation();
        var address = SubscriptionsApi.ParseEmail(email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var result = await service.EraseAsync(user.TenantId(), address, RequestOrigin.From(http, ConsentSources.Api), ct);
        return TypedResults.Accepted((string?)null, result);
    }
}
