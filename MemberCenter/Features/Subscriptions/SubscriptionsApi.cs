using System.Security.Claims;
using System.Text.Json;
using MemberCenter.Extensions;
using MemberCenter.Features.Reader;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts;
using OpenIddict.Abstractions;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Subscriptions;

/// <summary>The tenant integration guide's section 3: /newsletter/*. JSON routes for tenant sites, pages for end users.</summary>
public static class SubscriptionsApi
{
    public static IEndpointRouteBuilder MapSubscriptionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/newsletter").WithTags("Newsletter");

        api.MapPost("/subscribe", Subscribe).RequireAuthorization(Policies.SubscriptionsWrite).WithName("subscribe")
            .WithSummary("Subscribe an address to a list; sends the double opt-in mail and returns confirm_token.");
        api.MapPost("/unsubscribe-token", IssueUnsubscribeToken).RequireAuthorization(Policies.SubscriptionsWrite).WithName("issueUnsubscribeToken")
            .WithSummary("Mint an unsubscribe token for list_id + email.");
        api.MapGet("/preferences", GetPreferences).RequireAuthorization(Policies.SubscriptionsRead).WithName("getPreferences")
            .WithSummary("Read a subscription's status and preferences.");
        api.MapPost("/preferences", UpdatePreferences).RequireAuthorization(Policies.SubscriptionsWrite).WithName("updatePreferences")
            .WithSummary("Merge preferences into a subscription (a null value removes a key).");

        // Reached from email links: the token in the link is the credential, there is no bearer.
        api.MapGet("/confirm", EndUserPages.Confirm).WithName("confirmSubscription").WithSummary("Confirm a subscription (double opt-in link). HTML, or JSON with Accept: application/json.")
            .Produces<ConfirmResponse>(StatusCodes.Status200OK, "application/json", "text/html")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status410Gone);
        api.MapPost("/unsubscribe", EndUserPages.Unsubscribe).WithName("unsubscribe")
            .WithSummary("Unsubscribe with a token: JSON {token}, the page's form, or RFC 8058 one-click (List-Unsubscribe=One-Click).")
            .Accepts<UnsubscribeRequest>("application/json", "application/x-www-form-urlencoded")
            .Produces<UnsubscribeResponse>(StatusCodes.Status200OK, "application/json", "text/html", "text/plain")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status410Gone)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        api.MapGet("/unsubscribe", EndUserPages.UnsubscribePage).WithName("showUnsubscribePage").WithSummary("End-user page asking to confirm the unsubscribe.")
            .Produces(StatusCodes.Status200OK, contentType: "text/html").Produces(StatusCodes.Status404NotFound, contentType: "text/html");
        api.MapGet("/manage", EndUserPages.ManagePage).WithName("showManagePage").WithSummary("End-user preference centre, opened with an unsubscribe token.")
            .Produces(StatusCodes.Status200OK, contentType: "text/html").Produces(StatusCodes.Status404NotFound, contentType: "text/html");
        api.MapPost("/manage", EndUserPages.SaveManage).WithName("saveManagePage").WithSummary("Saves the preference centre form.")
            .Produces(StatusCodes.Status200OK, contentType: "text/html").Produces(StatusCodes.Status404NotFound, contentType: "text/html")
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        return app;
    }

    private static async Task<Results<Ok<SubscribeResponse>, ValidationProblem, ProblemHttpResult>> Subscribe(
        SubscribeRequest request, ClaimsPrincipal user, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
    {
        var v = new Validation();
        var listId = ParseListId(request.ListId, v);
        var email = ParseEmail(request.Email, v);
        ValidatePreferences(request.Preferences, v, required: false);
        if (v.IsValid)
        {
            ReaderSettingsValidation.Preferences(await looks.FieldsAsync(user.TenantId(), listId, ct), request.Preferences, complete: true, v);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        // The reader's Accept-Language (a tenant site forwards its visitor's) picks the confirmation mail's language
        // when the preferences carry no lang.
        var origin = RequestOrigin.From(http, ConsentSources.Api) with { Language = ReaderText.FromAcceptLanguage(http.Request.GetTypedHeaders().AcceptLanguage) };
        var result = await service.SubscribeAsync(user.TenantId(), listId, email, request.Preferences, origin, ct);
        return result is null ? ListNotFound() : TypedResults.Ok(result);
    }

    private static async Task<Results<Ok<UnsubscribeTokenResponse>, ValidationProblem, ProblemHttpResult>> IssueUnsubscribeToken(
        UnsubscribeTokenRequest request, ClaimsPrincipal user, SubscriptionService service, CancellationToken ct)
    {
        var v = new Validation();
        var listId = ParseListId(request.ListId, v);
        var email = ParseEmail(request.Email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var result = await service.IssueUnsubscribeTokenAsync(user.TenantId(), listId, email, ct);
        return result is null ? SubscriptionNotFound() : TypedResults.Ok(result);
    }

    private static async Task<Results<Ok<PreferencesResponse>, ValidationProblem, ProblemHttpResult>> GetPreferences(
        string? list_id, string? email, ClaimsPrincipal user, SubscriptionService service, CancellationToken ct)
    {
        var v = new Validation();
        var listId = ParseListId(list_id, v);
        var address = ParseEmail(email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var result = await service.GetPreferencesAsync(user.TenantId(), listId, address, ct);
        return result is null ? SubscriptionNotFound() : TypedResults.Ok(ContentFor(user, result));
    }

    private static async Task<Results<Ok<PreferencesResponse>, ValidationProblem, ProblemHttpResult>> UpdatePreferences(
        PreferencesUpdateRequest request, ClaimsPrincipal user, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
    {
        var v = new Validation();
        var listId = ParseListId(request.ListId, v);
        var email = ParseEmail(request.Email, v);
        ValidatePreferences(request.Preferences, v, required: true);
        if (v.IsValid)
        {
            ReaderSettingsValidation.Preferences(await looks.FieldsAsync(user.TenantId(), listId, ct), request.Preferences, complete: false, v);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        try
        {
            var result = await service.UpdatePreferencesAsync(user.TenantId(), listId, email, request.Preferences!, RequestOrigin.From(http, ConsentSources.Api), ct);
            return result is null ? SubscriptionNotFound() : TypedResults.Ok(ContentFor(user, result));
        }
        catch (PreferencesTooLargeException ex)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["preferences"] = [ex.Message] });
        }
    }

    /// <summary>Preferences are subscriber content: only tokens with newsletter:content.read see them (viewers do not).</summary>
    private static PreferencesResponse ContentFor(ClaimsPrincipal user, PreferencesResponse response) =>
        user.HasScope(Scopes.ContentRead) ? response : response with { Preferences = null };

    internal static Guid ParseListId(string? value, Validation v)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            v.Add("list_id", "The list_id field is required.");
        }
        else if (!Guid.TryParse(value, out var id))
        {
            v.Add("list_id", "The list_id must be a list id as returned by Member Center (a UUID).");
        }
        else
        {
            return id;
        }
        return Guid.Empty;
    }

    internal static EmailAddress ParseEmail(string? value, Validation v)
    {
        if (!EmailAddress.TryParse(value, out var email, out var error))
        {
            v.Add("email", error);
        }
        return email;
    }

    internal static void ValidatePreferences(Dictionary<string, JsonElement>? preferences, Validation v, bool required)
    {
        if (preferences is null)
        {
            if (required)
            {
                v.Add("preferences", "The preferences field is required (a JSON object).");
            }
            return;
        }
        if (preferences.Count > SubscriptionService.MaxPreferenceKeys)
        {
            v.Add("preferences", $"At most {SubscriptionService.MaxPreferenceKeys} preference keys are allowed.");
        }
        if (preferences.Keys.Any(k => k.Length is 0 or > 64))
        {
            v.Add("preferences", "Preference keys must be 1 to 64 characters.");
        }
        if (preferences.Any(p => !StorableText.IsStorable(p.Key) || !StorableText.IsStorable(p.Value)))
        {
            v.Add("preferences", "Preference keys and values must not contain NUL characters or unpaired surrogates, "
                                 + "and numbers must have at most 100 characters and exponents within ±1000.");
        }
        if (JsonSerializer.SerializeToUtf8Bytes(preferences).Length > SubscriptionService.MaxPreferencesBytes)
        {
            v.Add("preferences", $"Preferences must serialise to at most {SubscriptionService.MaxPreferencesBytes} bytes.");
        }
    }

    // Another tenant's list answers exactly like a list that does not exist.
    internal static ProblemHttpResult ListNotFound() =>
        TypedResults.Problem(statusCode: 404, title: "List not found", detail: "No list with this list_id exists for your tenant.");

    private static ProblemHttpResult SubscriptionNotFound() =>
        TypedResults.Problem(statusCode: 404, title: "Subscription not found", detail: "This email has no subscription to this list_id in your tenant.");
}
