using System.Security.Claims;
using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Extensions;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using OpenIddict.Abstractions;

namespace MemberCenter.Features.Subscribers;

/// <summary>
/// The console's "Lists and subscribers" routes (token auth, tenant scoped): search, a list's subscribers, one
/// subscriber with its consent trail, add, unsubscribe, CSV import and export. Reads need newsletter:subscriptions.read,
/// changes .write; preferences and consent details are null without newsletter:content.read.
/// </summary>
public static class SubscriberDirectoryApi
{
    public static IEndpointRouteBuilder MapSubscriberDirectoryApi(this IEndpointRouteBuilder app)
    {
        var subscribers = app.MapGroup("/api/subscribers").WithTags("Subscribers");
        subscribers.MapGet("/", Search).RequireAuthorization(Policies.SubscriptionsRead).WithName("searchSubscribers")
            .WithSummary("Search the tenant's subscribers by address prefix (case-insensitive), optionally of one list and status; keyset pages in address order.");
        subscribers.MapGet("/{email}", Detail).RequireAuthorization(Policies.SubscriptionsRead).WithName("getSubscriber")
            .WithSummary("One subscriber: its subscriptions (preferences with newsletter:content.read) and its consent trail, newest first.");

        var lists = app.MapGroup("/api/lists/{listId:guid}").WithTags("Subscribers");
        lists.MapGet("/subscribers", ListSubscribers).RequireAuthorization(Policies.SubscriptionsRead).WithName("listListSubscribers")
            .WithSummary("A list's subscribers, newest first, optionally of one status; keyset pages.");
        lists.MapPost("/subscribers", Add).RequireAuthorization(Policies.SubscriptionsWrite).WithName("addListSubscriber")
            .WithSummary("Add an address to the list: confirmed (with the tenant's consent note) or double_opt_in (confirmation mail).");
        lists.MapPost("/subscribers/{email}/unsubscribe", Unsubscribe).RequireAuthorization(Policies.SubscriptionsWrite).WithName("unsubscribeListSubscriber")
            .WithSummary("Unsubscribe an address from the list, as its reader's unsubscribe link would (Send Engine learns it from the change feed).");
        lists.MapGet("/subscribers/export", Export).RequireAuthorization(Policies.SubscriptionsRead).WithName("exportListSubscribers")
            .WithSummary("The list's subscriptions as CSV, streamed (preferences column with newsletter:content.read).")
            .Produces(StatusCodes.Status200OK, contentType: "text/csv")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        lists.MapPost("/imports", Import).RequireAuthorization(Policies.SubscriptionsWrite).WithName("importListSubscribers")
            .WithSummary("Upload a CSV (header email plus optional preference columns) to subscribe its rows in the background; 202 with the import id.")
            .Accepts<string>("text/csv")
            .Produces<SubscriberImportResponse>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        lists.MapGet("/imports/{importId:guid}", GetImport).RequireAuthorization(Policies.SubscriptionsRead).WithName("getListImport")
            .WithSummary("An import's progress: status, total rows, processed, created, updated, skipped, invalid (first 100 lines with reasons).");
        return app;
    }

    private static bool CanReadContent(ClaimsPrincipal user) => user.HasScope(Scopes.ContentRead);

    private static SubscriptionStatus? ParseStatus(string? status, Validation v)
    {
        switch (status)
        {
            case null or "":
                return null;
            case SubscriptionStatuses.Pending:
                return SubscriptionStatus.Pending;
            case SubscriptionStatuses.Confirmed:
                return SubscriptionStatus.Confirmed;
            case SubscriptionStatuses.Unsubscribed:
                return SubscriptionStatus.Unsubscribed;
            default:
                v.Add("status", "The status must be pending, confirmed or unsubscribed.");
                return null;
        }
    }

    private static int ParseLimit(int? limit, Validation v)
    {
        if (limit is < 1 or > SubscriberDirectory.MaxLimit)
        {
            v.Add("limit", $"The limit must be between 1 and {SubscriberDirectory.MaxLimit}.");
        }
        return limit ?? 50;
    }

    private static Guid? ParseCursor(string? after, Validation v)
    {
        if (string.IsNullOrEmpty(after))
        {
            return null;
        }
        if (Guid.TryParse(after, out var id))
        {
            return id;
        }
        v.Add("after", "The after cursor must be a next_cursor of an earlier page.");
        return null;
    }

    private static async Task<Results<Ok<SubscriberPage>, ValidationProblem, ProblemHttpResult>> Search(
        string? email, string? list_id, string? status, int? limit, string? after, ClaimsPrincipal user, SubscriberDirectory directory, CancellationToken ct)
    {
        var v = new Validation();
        var prefix = email?.Trim().ToLowerInvariant();
        if (prefix?.Length > 320)
        {
            v.Add("email", "The email prefix must be at most 320 characters.");
        }
        if (prefix is not null && !StorableText.IsStorable(prefix))
        {
            v.Add("email", "The email prefix must not contain NUL characters or unpaired surrogates.");
        }
        Guid? listId = null;
        if (!string.IsNullOrEmpty(list_id))
        {
            listId = SubscriptionsApi.ParseListId(list_id, v);
        }
        var st = ParseStatus(status, v);
        var n = ParseLimit(limit, v);
        var cursor = ParseCursor(after, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var tenantId = user.TenantId();
        if (listId is { } l && !await directory.ListExistsAsync(tenantId, l, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        string? afterKey = null;
        if (cursor is { } c && (afterKey = await directory.CursorKeyAsync(tenantId, c, ct)) is null)
        {
            // The cursor's subscriber was erased (or is not the tenant's): the position is lost, start again.
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = ["The cursor no longer exists; search again."] });
        }
        return TypedResults.Ok(await directory.SearchAsync(tenantId, prefix, listId, st, n, afterKey, ct));
    }

    private static async Task<Results<Ok<SubscriberDetail>, ValidationProblem, ProblemHttpResult>> Detail(
        string email, ClaimsPrincipal user, SubscriberDirectory directory, CancellationToken ct)
    {
        var v = new Validation();
        var address = SubscriptionsApi.ParseEmail(email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var detail = await directory.DetailAsync(user.TenantId(), address, CanReadContent(user), ct);
        return detail is null ? SubscriberNotFound() : TypedResults.Ok(detail);
    }

    private static async Task<Results<Ok<ListSubscriberPage>, ValidationProblem, ProblemHttpResult>> ListSubscribers(
        Guid listId, string? status, int? limit, string? after, ClaimsPrincipal user, SubscriberDirectory directory, CancellationToken ct)
    {
        var v = new Validation();
        var st = ParseStatus(status, v);
        var n = ParseLimit(limit, v);
        var cursor = ParseCursor(after, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await directory.ListExistsAsync(user.TenantId(), listId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        return TypedResults.Ok(await directory.ListAsync(listId, st, n, cursor, CanReadContent(user), ct));
    }

    private static async Task<Results<Ok<AddSubscriberResponse>, ValidationProblem, ProblemHttpResult>> Add(
        Guid listId, AddSubscriberRequest request, ClaimsPrincipal user, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
    {
        var v = new Validation();
        var email = SubscriptionsApi.ParseEmail(request.Email, v);
        SubscriptionsApi.ValidatePreferences(request.Preferences, v, required: false);
        if (v.IsValid)
        {
            // The console adds an address with what it knows: keys and choices are checked, required fields not demanded.
            ReaderSettingsValidation.Preferences(await looks.FieldsAsync(user.TenantId(), listId, ct), request.Preferences, complete: false, v);
        }
        var confirmed = ValidateMode(request.Mode, request.ConsentNote, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var details = new Dictionary<string, object?>();
        if (confirmed)
        {
            details["confirmed"] = true;
        }
        if (!string.IsNullOrWhiteSpace(request.ConsentNote))
        {
            details["note"] = request.ConsentNote.Trim();
        }
        if (request.Preferences is not null)
        {
            details["preferences"] = request.Preferences;
        }
        var row = new SubscribeRow(email, request.Preferences is null ? null : JsonSerializer.Serialize(request.Preferences),
            details.Count == 0 ? null : JsonSerializer.Serialize(details));
        var result = await service.SubscribeAsync(user.TenantId(), listId, row, confirmed, RequestOrigin.From(http, ConsentSources.Api), ct);
        if (result is null)
        {
            return SubscriptionsApi.ListNotFound();
        }
        return TypedResults.Ok(new AddSubscriberResponse(listId.ToString(), email.Value, SubscriptionService.StatusName(result.Status), OutcomeName(result.Outcome)));
    }

    /// <summary>True for confirmed; a confirmed add needs the tenant's note of the consent it holds.</summary>
    private static bool ValidateMode(string? mode, string? note, Validation v)
    {
        if (mode is not (SubscriberAddModes.Confirmed or SubscriberAddModes.DoubleOptIn))
        {
            v.Add("mode", "The mode must be confirmed or double_opt_in.");
        }
        if (mode == SubscriberAddModes.Confirmed && string.IsNullOrWhiteSpace(note))
        {
            v.Add("consent_note", "A confirmed subscriber needs a consent_note: where and how the reader agreed.");
        }
        if (note?.Length > 500)
        {
            v.Add("consent_note", "The consent_note must be at most 500 characters.");
        }
        if (note is not null && !StorableText.IsStorable(note))
        {
            v.Add("consent_note", "The consent_note must not contain NUL characters or unpaired surrogates.");
        }
        return mode == SubscriberAddModes.Confirmed;
    }

    private static string OutcomeName(SubscribeOutcome outcome) => outcome switch
    {
        SubscribeOutcome.Created => SubscribeOutcomes.Created,
        SubscribeOutcome.Updated => SubscribeOutcomes.Updated,
        _ => SubscribeOutcomes.AlreadyConfirmed,
    };

    private static async Task<Results<Ok<UnsubscribeResponse>, ValidationProblem, ProblemHttpResult>> Unsubscribe(
        Guid listId, string email, ClaimsPrincipal user, HttpContext http, SubscriptionService service, CancellationToken ct)
    {
        var v = new Validation();
        var address = SubscriptionsApi.ParseEmail(email, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var result = await service.UnsubscribeByTenantAsync(user.TenantId(), listId, address, null, RequestOrigin.From(http, ConsentSources.Api), ct);
        return result is null
            ? TypedResults.Problem(statusCode: 404, title: "Subscription not found", detail: "This email has no subscription to this list in your tenant.")
            : TypedResults.Ok(result);
    }

    private static async Task<IResult> Export(Guid listId, string? status, ClaimsPrincipal user, HttpContext http, SubscriberDirectory directory, CancellationToken ct)
    {
        var v = new Validation();
        var st = ParseStatus(status, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await directory.ListExistsAsync(user.TenantId(), listId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        var content = CanReadContent(user);
        // The download is its own progress: rows are written as they are read, page by page, never held whole.
        return Results.Stream(body => directory.ExportAsync(listId, st, content, body, http.RequestAborted), "text/csv; charset=utf-8",
            $"list-{listId:N}-subscribers.csv");
    }

    private static async Task<IResult> Import(Guid listId, string? mode, string? consent_note, ClaimsPrincipal user, HttpContext http,
        SubscriberImportService imports, MemberCenterDbContext db, IOptions<ImportOptions> options, Reader.ReaderLooks looks, CancellationToken ct)
    {
        var v = new Validation();
        var confirmed = ValidateMode(mode, consent_note, v);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var tenantId = user.TenantId();
        if (!await db.MailingLists.AnyAsync(l => l.Id == listId && l.TenantId == tenantId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        var mediaType = http.Request.ContentType is { } ct0 && Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(ct0, out var parsed)
            ? parsed.MediaType.Value : null;
        if (!string.Equals(mediaType, "text/csv", StringComparison.OrdinalIgnoreCase))
        {
            return TypedResults.Problem(statusCode: 415, title: "Unsupported media type", detail: "Send the file as the body with Content-Type: text/csv.");
        }
        var max = options.Value.MaxBytes;
        if (http.Request.ContentLength > max)
        {
            return TooLarge($"The file is larger than {max} bytes.");
        }
        // The limit is enforced while reading (a chunked body has no length), not by Kestrel's smaller default.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = null;
        }
        var staged = await imports.StageAsync(tenantId, listId, confirmed ? SubscriberAddModes.Confirmed : SubscriberAddModes.DoubleOptIn,
            string.IsNullOrWhiteSpace(consent_note) ? null : consent_note.Trim(), user.FindFirst(OpenIddictConstants.Claims.Subject)?.Value,
            RequestOrigin.From(http, ConsentSources.Import), http.Request.Body, ct, await looks.FieldsAsync(tenantId, listId, ct));
        switch (staged.Failure)
        {
            case StageFailure.TooLarge:
                return TooLarge(staged.Detail!);
            case StageFailure.BadHeader:
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["file"] = [staged.Detail!] });
        }
        var created = await db.SubscriberImports.AsNoTracking().SingleAsync(i => i.Id == staged.ImportId, ct);
        return TypedResults.Accepted($"/api/lists/{listId}/imports/{staged.ImportId}", ToResponse(created));
    }

    private static ProblemHttpResult TooLarge(string detail) =>
        TypedResults.Problem(statusCode: 413, title: "File too large", detail: detail + " Split it into several imports.");

    private static async Task<Results<Ok<SubscriberImportResponse>, ProblemHttpResult>> GetImport(
        Guid listId, Guid importId, ClaimsPrincipal user, MemberCenterDbContext db, CancellationToken ct)
    {
        var tenantId = user.TenantId();
        var import = await db.SubscriberImports.AsNoTracking().FirstOrDefaultAsync(i => i.Id == importId && i.ListId == listId && i.TenantId == tenantId, ct);
        return import is null
            ? TypedResults.Problem(statusCode: 404, title: "Import not found", detail: "No import with this id exists for this list of your tenant.")
            : TypedResults.Ok(ToResponse(import));
    }

    private static SubscriberImportResponse ToResponse(SubscriberImport i) => new(i.Id.ToString(), i.ListId.ToString(), i.Mode, i.Status, i.TotalRows,
        i.Processed, i.Created, i.Updated, i.Skipped, i.Invalid,
        JsonSerializer.Deserialize<List<ImportLineError>>(i.InvalidLines, SubscriberImportService.SnakeCase) ?? [], i.CreatedAt, i.CompletedAt);

    private static ProblemHttpResult SubscriberNotFound() =>
        TypedResults.Problem(statusCode: 404, title: "Subscriber not found", detail: "No subscriber with this email exists in your tenant.");
}
