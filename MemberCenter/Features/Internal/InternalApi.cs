using System.Buffers.Text;
using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Extensions;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Internal;

/// <summary>
/// Send Engine's API (audience member_center_internal, internal:* scopes; tenant tokens are refused).
/// Documented in docs/internal-api.md.
/// </summary>
public static class InternalApi
{
    public const int MaxPageSize = 5000;

    public static IEndpointRouteBuilder MapInternalApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/internal").WithTags("Internal (Send Engine)");
        api.MapGet("/lists/{listId:guid}", GetList).RequireAuthorization(Policies.InternalRecipients)
            .WithName("getInternalList").WithSummary("Whether the list exists and is the tenant's.");
        api.MapGet("/lists/{listId:guid}/recipients", Recipients).RequireAuthorization(Policies.InternalRecipients)
            .WithName("listRecipients").WithSummary("One page of a list's confirmed, deliverable subscribers.");
        api.MapPost("/lists/{listId:guid}/link-key", LinkKey).RequireAuthorization(Policies.InternalRecipients)
            .WithName("deriveLinkKey").WithSummary("The derived key a job mints its unsubscribe links with.");
        api.MapGet("/lists/{listId:guid}/changes", Changes).RequireAuthorization(Policies.InternalRecipients)
            .WithName("listSubscriptionChanges").WithSummary("Subscriptions that stopped being sendable after a cursor.");
        api.MapPost("/lists/{listId:guid}/not-sendable", NotSendable).RequireAuthorization(Policies.InternalRecipients)
            .WithName("findNotSendable").WithSummary("Of the given addresses, those that must not be mailed now.");
        api.MapGet("/tenants/{tenantId:guid}/mail-footer", MailFooter).RequireAuthorization(Policies.InternalRecipients)
            .WithName("getInternalMailFooter").WithSummary("What the tenant's bulk mail carries in its footer (footer text, postal address, unsubscribe wording per language); "
                + "with list_id, in that list's default language (404 when the list is not the tenant's).");
        api.MapPost("/suppressions", ReportSuppression).RequireAuthorization(Policies.InternalSuppressions)
            .WithName("reportSuppression").WithSummary("Report a hard bounce, complaint or unsubscribe from delivery feedback.");
        return app;
    }

    /// <summary>
    /// One page of confirmed, deliverable subscribers ordered by subscriber id; pass next_cursor back as after.
    /// tenant_id must be the list's tenant, so a job can only read its own tenant's list.
    /// </summary>
    private static async Task<Results<Ok<RecipientPage>, ValidationProblem, ProblemHttpResult>> Recipients(
        Guid listId, Guid? tenant_id, Guid? after, int? limit,
        MemberCenterDbContext db, CancellationToken ct)
    {
        var v = new Validation();
        if (tenant_id is null)
        {
            v.Add("tenant_id", "The tenant_id query parameter is required.");
        }
        var size = limit ?? 1000;
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await IsTenantListAsync(db, listId, tenant_id!.Value, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }

        // The change feed's position before the first page is read: a change committed later has a higher id (see
        // SubscriptionChanges.RecordAsync), so nothing that happens during the snapshot is missed.
        string? changesCursor = null;
        if (after is null)
        {
            changesCursor = (await db.SubscriptionChanges.Where(c => c.ListId == listId).MaxAsync(c => (long?)c.Id, ct) ?? 0)
                .ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var cursor = after ?? Guid.Empty;
        // The cursor is stated for both sides of the join: PostgreSQL merge-joins the two primary-key orders, and
        // without `p.id > cursor` it read the subscribers index from its start on every page (a page deep into a 100k
        // list read ~50k index entries: 27 ms instead of 2-5 ms, quadratic in the list size).
        var rows = await (from s in db.Subscriptions
                          join p in db.Subscribers on s.SubscriberId equals p.Id
                          where s.ListId == listId && s.Status == SubscriptionStatus.Confirmed && s.SubscriberId.CompareTo(cursor) > 0
                                && p.Id.CompareTo(cursor) > 0 && p.UndeliverableAt == null
                          orderby s.SubscriberId
                          select new { s.SubscriberId, p.Email, s.Preferences })
            .Take(size).AsNoTracking().ToListAsync(ct);

        // No links here: Send Engine mints them per message from the list's link key (POST .../link-key).
        var items = rows.Select(r => new Recipient(r.SubscriberId.ToString(), r.Email, SubscriptionService.ParsePreferences(r.Preferences))).ToList();
        var next = rows.Count == size ? rows[^1].SubscriberId.ToString() : null;
        return TypedResults.Ok(new RecipientPage(tenant_id!.Value.ToString(), listId.ToString(), items, next, changesCursor));
    }

    /// <summary>
    /// The list's subscriptions that stopped being sendable after the cursor (changes_cursor of the first recipients page,
    /// then next_cursor), in commit order: Send Engine keeps this set instead of re-checking every address.
    /// </summary>
    private static async Task<Results<Ok<SubscriptionChangesPage>, ValidationProblem, ProblemHttpResult>> Changes(
        Guid listId, Guid? tenant_id, string? after, int? limit, MemberCenterDbContext db, CancellationToken ct)
    {
        var v = new Validation();
        if (tenant_id is null)
        {
            v.Add("tenant_id", "The tenant_id query parameter is required.");
        }
        long position = 0;
        if (after is not null && !long.TryParse(after, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out position))
        {
            v.Add("after", "The after cursor is not one this API returned.");
        }
        var size = limit ?? 1000;
        if (size is < 1 or > MaxPageSize)
        {
            v.Add("limit", $"The limit must be between 1 and {MaxPageSize}.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await IsTenantListAsync(db, listId, tenant_id!.Value, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        var rows = await (from c in db.SubscriptionChanges
                          where c.ListId == listId && c.Id > position
                          orderby c.Id
                          select new
                          {
                              c.Id, c.SubscriberId, c.Change, c.OccurredAt,
                              Email = db.Subscribers.Where(p => p.Id == c.SubscriberId).Select(p => p.Email).FirstOrDefault(),
                          })
            .Take(size).AsNoTracking().ToListAsync(ct);
        var items = rows.Select(r => new SubscriptionChangeItem(r.SubscriberId.ToString(), r.Email, r.Change, r.OccurredAt)).ToList();
        var next = (rows.Count > 0 ? rows[^1].Id : position).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Ok(new SubscriptionChangesPage(tenant_id!.Value.ToString(), listId.ToString(), items, next));
    }

    private static string UnsubscribeUrlPrefix(PublicUrlOptions urls) => urls.Link("/newsletter/unsubscribe?token=");

    /// <summary>Every internal route's access rule: the list exists and is the tenant's (another tenant's list is a 404).</summary>
    private static Task<bool> IsTenantListAsync(MemberCenterDbContext db, Guid listId, Guid tenantId, CancellationToken ct) =>
        db.MailingLists.AnyAsync(l => l.Id == listId && l.TenantId == tenantId, ct);

    /// <summary>Whether the list exists and is the tenant's: a read without side effects for Send Engine's job create.</summary>
    private static async Task<Results<Ok<InternalListResponse>, ValidationProblem, ProblemHttpResult>> GetList(
        Guid listId, Guid? tenant_id, MemberCenterDbContext db, CancellationToken ct)
    {
        if (tenant_id is null)
        {
            return TypedResults.ValidationProblem(new Validation().Add("tenant_id", "The tenant_id query parameter is required.").Errors);
        }
        return await IsTenantListAsync(db, listId, tenant_id!.Value, ct)
            ? TypedResults.Ok(new InternalListResponse(tenant_id.Value.ToString(), listId.ToString(), await PostalAddressAsync(db, tenant_id.Value, ct)))
            : SubscriptionsApi.ListNotFound();
    }

    /// <summary>The tenant's branding postal address, or null: the footer of its bulk mail (CAN-SPAM).</summary>
    private static Task<string?> PostalAddressAsync(MemberCenterDbContext db, Guid tenantId, CancellationToken ct) =>
        db.TenantBrandings.Where(b => b.TenantId == tenantId).Select(b => b.PostalAddress).FirstOrDefaultAsync(ct);

    /// <summary>
    /// The branded footer of the tenant's bulk mail (footer text, postal address, unsubscribe wording per language) and
    /// the list's default language (no list: English).
    /// </summary>
    private static async Task<MailFooter> FooterAsync(MemberCenterDbContext db, ReaderText text, Guid tenantId, Guid? listId, CancellationToken ct)
    {
        var branding = await db.TenantBrandings.Where(b => b.TenantId == tenantId)
            .Select(b => new { b.FooterText, b.PostalAddress }).AsNoTracking().FirstOrDefaultAsync(ct);
        var listDefault = listId is { } id
            ? await db.ListPreferenceFields.Where(f => f.ListId == id).Select(f => f.DefaultLanguage).FirstOrDefaultAsync(ct)
            : null;
        return new MailFooter(branding?.FooterText, branding?.PostalAddress, ReaderLanguages.Normalise(listDefault) ?? ReaderLanguages.English,
            text.FooterWording());
    }

    /// <summary>The footer data of a tenant's bulk mail for Send Engine's compose preview and test send: without a list
    /// (default language English), or for one of the tenant's lists (its default language).</summary>
    private static async Task<Results<Ok<InternalMailFooterResponse>, ProblemHttpResult>> MailFooter(Guid tenantId, Guid? list_id,
        MemberCenterDbContext db, ReaderText text, CancellationToken ct)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == tenantId, ct))
        {
            return TypedResults.Problem(statusCode: 404, title: "Tenant not found");
        }
        if (list_id is { } listId && !await IsTenantListAsync(db, listId, tenantId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        var footer = await FooterAsync(db, text, tenantId, list_id, ct);
        return TypedResults.Ok(new InternalMailFooterResponse(tenantId.ToString(), footer.PostalAddress, footer));
    }

    /// <summary>
    /// The derived key Send Engine mints a job's unsubscribe links with: K_link = HMAC-SHA256(K_root[key_id],
    /// "unsubscribe-link|tenant|list|issued_at"). Without key_id/issued_at: the current key and now; with both: the same
    /// key again, so a restarted Send Engine re-derives a job's key without storing it. 410 once those links are dead.
    /// </summary>
    private static async Task<Results<Ok<LinkKeyResponse>, ValidationProblem, ProblemHttpResult>> LinkKey(
        Guid listId, LinkKeyRequest request, MemberCenterDbContext db, LinkKeyRing ring, IOptions<NewsletterOptions> options,
        IOptions<PublicUrlOptions> urls, ReaderText text, TimeProvider clock, CancellationToken ct)
    {
        var v = new Validation();
        if (!Guid.TryParse(request.TenantId, out var tenantId))
        {
            v.Add("tenant_id", "The tenant_id field is required (a UUID).");
        }
        if ((request.KeyId is null) != (request.IssuedAt is null))
        {
            v.Add(request.KeyId is null ? "key_id" : "issued_at", "Give key_id and issued_at together, or neither.");
        }
        else if (request.KeyId is not null && !LinkKeyRing.IsKeyId(request.KeyId))
        {
            v.Add("key_id", "The key_id is not a link key id.");
        }
        if (request.IssuedAt is < 0 or > 253_402_300_799)
        {
            v.Add("issued_at", "The issued_at must be unix seconds.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await IsTenantListAsync(db, listId, tenantId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        var lifetime = options.Value.UnsubscribeTokenLifetime;
        var now = clock.GetUtcNow();
        LinkKeyRing.Key key;
        long issuedAt;
        if (request.KeyId is null)
        {
            key = await ring.GetCurrentAsync(ct);
            issuedAt = now.ToUnixTimeSeconds();
        }
        else
        {
            issuedAt = request.IssuedAt!.Value;
            var at = DateTimeOffset.FromUnixTimeSeconds(issuedAt);
            if (await ring.FindAsync(request.KeyId, ct) is not { } found || at + lifetime <= now)
            {
                return TypedResults.Problem(statusCode: 410, title: "Link key retired",
                    detail: "This key no longer verifies links issued at that time (their lifetime is over); ask for the current key.");
            }
            // Not in the future (beyond clock skew between replicas): a later issued_at would stretch the links' lifetime.
            if (at < found.CreatedAt || at > found.SignsUntil || at > now + TimeSpan.FromMinutes(5))
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]>
                {
                    ["issued_at"] = ["The issued_at must be a past time at which this key was signing (the issued_at it was handed out with)."],
                });
            }
            key = found;
        }
        var linkKey = key.DeriveLinkKey(tenantId, listId, issuedAt);
        var footer = await FooterAsync(db, text, tenantId, listId, ct);
        return TypedResults.Ok(new LinkKeyResponse(key.Id, issuedAt, Base64Url.EncodeToString(linkKey), UnsubscribeUrlPrefix(urls.Value),
            listId.ToString(), DateTimeOffset.FromUnixTimeSeconds(issuedAt) + lifetime, footer.PostalAddress, footer));
    }

    /// <summary>Of the given addresses, those that must not be mailed now (left the list, or undeliverable): Send Engine's re-check before a batch.</summary>
    private static async Task<Results<Ok<SubscriptionStatusResult>, ValidationProblem, ProblemHttpResult>> NotSendable(
        Guid listId, SubscriptionStatusQuery query, MemberCenterDbContext db, CancellationToken ct)
    {
        var v = new Validation();
        if (!Guid.TryParse(query.TenantId, out var tenantId))
        {
            v.Add("tenant_id", "The tenant_id field is required (a UUID).");
        }
        if (query.Emails is null || query.Emails.Count is 0 or > MaxPageSize)
        {
            v.Add("emails", $"Give 1 to {MaxPageSize} addresses.");
        }
        else if (query.Emails.Any(string.IsNullOrWhiteSpace))
        {
            v.Add("emails", "Every entry must be an address (no null or blank entries).");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        if (!await IsTenantListAsync(db, listId, tenantId, ct))
        {
            return SubscriptionsApi.ListNotFound();
        }
        // Each address is parsed (normalised, IDN-mapped) once: given address -> its key.
        var keyOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in query.Emails!)
        {
            keyOf.TryAdd(e, EmailAddress.TryParse(e, out var a, out _) ? a.Key : e.Trim().ToLowerInvariant());
        }
        var keys = keyOf.Values.Distinct().ToArray();
        var sendable = await (from s in db.Subscriptions
                              join p in db.Subscribers on s.SubscriberId equals p.Id
                              where s.ListId == listId && p.TenantId == tenantId && keys.Contains(p.EmailKey)
                                    && s.Status == SubscriptionStatus.Confirmed && p.UndeliverableAt == null
                              select p.EmailKey).ToListAsync(ct);
        var ok = sendable.ToHashSet(StringComparer.Ordinal);
        var notSendable = query.Emails!.Where(e => !ok.Contains(keyOf[e])).ToList();
        return TypedResults.Ok(new SubscriptionStatusResult(listId.ToString(), notSendable));
    }

    /// <summary>
    /// Delivery feedback. hard_bounce marks the subscriber undeliverable on all the tenant's lists; complaint
    /// unsubscribes from all of them; unsubscribe leaves list_id (or all lists without one). Audited with source "esp".
    /// </summary>
    private static async Task<Results<Ok<SuppressionReportResult>, ValidationProblem, ProblemHttpResult>> ReportSuppression(
        SuppressionReport report, HttpContext http, MemberCenterDbContext db, SubscriptionService subscriptions, TimeProvider clock, CancellationToken ct)
    {
        var v = new Validation();
        if (!Guid.TryParse(report.TenantId, out var tenantId))
        {
            v.Add("tenant_id", "The tenant_id field is required (a UUID).");
        }
        var email = SubscriptionsApi.ParseEmail(report.Email, v);
        if (report.Reason is not (SuppressionReasons.HardBounce or SuppressionReasons.Complaint or SuppressionReasons.Unsubscribe))
        {
            v.Add("reason", "The reason must be hard_bounce, complaint or unsubscribe.");
        }
        Guid? listId = null;
        if (report.ListId is { Length: > 0 })
        {
            if (Guid.TryParse(report.ListId, out var l))
            {
                listId = l;
            }
            else
            {
                v.Add("list_id", "The list_id must be a UUID.");
            }
        }
        if (report.Detail is { Length: > 500 })
        {
            v.Add("detail", "The detail must be at most 500 characters.");
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        // What the ESP said (bounce reason, unsubscribe type) goes into the consent trail with the change it caused.
        var details = report.Detail is { Length: > 0 } detail ? JsonSerializer.Serialize(new Dictionary<string, string> { ["esp_detail"] = detail }) : null;

        var subscriber = await db.Subscribers.FirstOrDefaultAsync(p => p.TenantId == tenantId && p.EmailKey == email.Key, ct);
        if (subscriber is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Subscriber not found", detail: "The tenant has no subscriber with this email.");
        }
        var now = clock.GetUtcNow();
        var origin = RequestOrigin.From(http, ConsentSources.Esp) with { IpAddress = null };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var changed = 0;
        var ids = await db.Subscriptions
            .Where(s => s.SubscriberId == subscriber.Id && (listId == null || s.ListId == listId))
            .OrderBy(s => s.ListId)
            .Select(s => s.Id).ToListAsync(ct);
        foreach (var id in ids)
        {
            var subscription = await subscriptions.LockAsync(id, ct);
            if (report.Reason == SuppressionReasons.HardBounce)
            {
                if (subscriber.UndeliverableAt is null)
                {
                    if (subscription.Status == SubscriptionStatus.Confirmed)
                    {
                        subscriptions.AddChange(subscription.ListId, subscriber.Id, SubscriptionChangeKinds.Undeliverable, now);
                    }
                    subscriptions.AddConsent(tenantId, subscription.ListId, subscriber.Id, ConsentActions.MarkedUndeliverable, origin, now, details);
                    changed++;
                }
            }
            else if (subscription.Status != SubscriptionStatus.Unsubscribed)
            {
                await subscriptions.UnsubscribeLockedAsync(subscription, tenantId, origin, now, details, ct);
                changed++;
            }
        }
        if (report.Reason == SuppressionReasons.HardBounce && subscriber.UndeliverableAt is null)
        {
            subscriber.UndeliverableAt = report.OccurredAt ?? now;
            subscriber.UndeliverableReason = SuppressionReasons.HardBounce;
        }
        await db.SaveChangesAsync(ct);
        await subscriptions.FlushChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(new SuppressionReportResult(tenantId.ToString(), email.Value, report.Reason!, changed));
    }
}
