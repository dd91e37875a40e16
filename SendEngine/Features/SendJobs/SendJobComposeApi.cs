using System.Security.Claims;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;
using SendEngine.Extensions;
using SendEngine.Features.MemberCenter;
using SendEngine.Features.SenderDomains;
using SendEngine.Transports;

namespace SendEngine.Features.SendJobs;

/// <summary>
/// Compose helpers for the console: a preview of one subscriber's message and a test send to one address. Both build
/// the message with <see cref="MessageComposer"/>, the job runner's own composer, so the preview is what a job sends.
/// </summary>
public static class SendJobComposeApi
{
    public const string TestSubjectPrefix = "[TEST] ";

    public static IEndpointRouteBuilder MapSendJobComposeApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/send-jobs").WithTags("Send jobs");
        api.MapPost("/preview", Preview).RequireAuthorization(AuthExtensions.ContentRead).WithName("previewSendJob")
            .WithSummary("Render subject, HTML and text of a template for one subscriber's merge values, exactly as a job would (needs newsletter:content.read); "
                + "list_id and lang choose the footer's language as the job's list and the reader's lang would.");
        api.MapPost("/test-send", TestSend).RequireAuthorization(AuthExtensions.SendWrite).WithName("testSendSendJob")
            .WithSummary("Send a template once to one address ([TEST] subject prefix) through the tenant's transport; no job is recorded. A person may only send to their own address. 10 per minute per tenant.");
        return app;
    }

    private static async Task<Results<Ok<ComposePreviewResponse>, ValidationProblem, ProblemHttpResult>> Preview(
        ComposeRequest request, ClaimsPrincipal user, IOptions<SmtpOptions> smtp, SenderSigning senders, IOptions<MemberCenterOptions> memberCenter,
        MemberCenterClient memberCenterClient, CancellationToken ct)
    {
        var v = Validate(request, out var from, out var listId, out var lang);
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        var email = MergeString(request, "email") ?? user.FindFirst(ClaimNames.Email)?.Value ?? "subscriber@example.com";
        var sender = await senders.ResolveAsync(user.TenantId(), from ?? smtp.Value.FromAddress, ct);
        var (footer, problem) = await FooterAsync(memberCenterClient, user.TenantId(), listId, ct);
        if (problem is not null)
        {
            return problem;
        }
        var message = Compose(request, request.Subject!, email, smtp.Value, sender, from, memberCenter.Value, footer, lang);
        return TypedResults.Ok(new ComposePreviewResponse(message.Subject, message.HtmlBody, message.TextBody));
    }

    private static async Task<Results<Ok<TestSendResponse>, ValidationProblem, ProblemHttpResult>> TestSend(
        ComposeRequest request, ClaimsPrincipal user, TestSendLimiter limiter, TransportResolver transports, IOptions<SmtpOptions> smtp,
        SenderSigning senders, IOptions<MemberCenterOptions> memberCenter, MemberCenterClient memberCenterClient, CancellationToken ct)
    {
        var v = Validate(request, out var from, out var listId, out var lang);
        var own = user.FindFirst(ClaimNames.Email)?.Value;
        var to = string.IsNullOrWhiteSpace(request.To) ? (user.IsPerson() ? own : null) : request.To;
        string address = "", key = "";
        if (string.IsNullOrWhiteSpace(to))
        {
            v.Add("to", "The to field is required.");
        }
        else if (!EmailAddresses.TryNormalize(to, out address, out key, out var error))
        {
            v.Add("to", error);
        }
        if (!v.IsValid)
        {
            return TypedResults.ValidationProblem(v.Errors);
        }
        // A person tries a message on themselves, not on someone else's inbox; an integration (client credentials with
        // send.write) can already mail anyone through a job.
        if (user.IsPerson() && (own is null || !EmailAddresses.TryNormalize(own, out _, out var ownKey, out _) || ownKey != key))
        {
            return TypedResults.Problem(statusCode: 403, title: "Test sends go to your own address",
                detail: "A person's token may send a test only to the address in its email claim.");
        }
        var tenantId = user.TenantId();
        // Signed as the job would be: the from domain's own key when it is verified (the global key otherwise), and held
        // to the same rule as a job's create: no test from a domain the tenant has not verified. Checked before the rate
        // limit, so a refused test uses no slot.
        var sender = await senders.ResolveAsync(tenantId, from ?? smtp.Value.FromAddress, ct);
        if (!sender.Verified && !senders.AllowUnverified)
        {
            return SendJobsApi.SenderDomainNotVerified(from ?? smtp.Value.FromAddress);
        }
        var (footer, problem) = await FooterAsync(memberCenterClient, tenantId, listId, ct);
        if (problem is not null)
        {
            return problem;
        }
        using var lease = limiter.Acquire(tenantId);
        if (!lease.IsAcquired)
        {
            return TypedResults.Problem(statusCode: 429, title: "Too many test sends",
                detail: $"At most {TestSendLimiter.PerMinute} test sends per minute per tenant; try again in a minute.");
        }
        var merge = MergeString(request, "email") ?? address;
        var message = Compose(request, TestSubjectPrefix + request.Subject, merge, smtp.Value, sender, from, memberCenter.Value, footer, lang, address);
        await using var session = (await transports.ForAsync(tenantId, ct)).OpenSession();
        var result = await session.SendAsync(message, ct);
        return TypedResults.Ok(new TestSendResponse(address, message.Subject, TransportResolver.OutcomeName(result.Outcome), message.MessageId, result.Detail));
    }

    private static Validation Validate(ComposeRequest request, out string? from, out Guid? listId, out string? lang)
    {
        var v = new Validation();
        from = SendJobsApi.ValidateFrom(v, request.FromEmail, request.FromName);
        listId = null;
        lang = null;
        if (!string.IsNullOrWhiteSpace(request.ListId))
        {
            if (Guid.TryParse(request.ListId, out var id))
            {
                listId = id;
            }
            else
            {
                v.Add("list_id", "The list_id must be a list's id (a UUID).");
            }
        }
        if (!string.IsNullOrWhiteSpace(request.Lang) && (lang = ReaderLanguages.Normalise(request.Lang)) is null)
        {
            v.Add("lang", $"Give one of: {string.Join(", ", ReaderLanguages.All)}.");
        }
        v.Required("subject", request.Subject);
        v.MaxLength("subject", request.Subject, 998);
        SendJobsApi.ValidateBodies(v, request.BodyHtml, request.BodyText);
        if (request.Merge?.Count > 200)
        {
            v.Add("merge", "At most 200 merge values.");
        }
        return v;
    }

    /// <summary>The tenant's branded footer, as a job's run reads it (Footer null: none), in the default language of the
    /// list when one is given; Problem: 404 when that list is not the tenant's, 503 when Member Center is down.</summary>
    private static async Task<(MailFooter? Footer, ProblemHttpResult? Problem)> FooterAsync(MemberCenterClient memberCenter, Guid tenantId, Guid? listId,
        CancellationToken ct)
    {
        try
        {
            var footer = await memberCenter.GetMailFooterAsync(tenantId, listId, ct);
            return footer is null && listId is not null
                ? (null, TypedResults.Problem(statusCode: 404, title: "List not found", detail: "No list with this list_id exists for your tenant."))
                : (footer, null);
        }
        catch (Exception ex) when (MemberCenterClient.IsOutage(ex, ct))
        {
            return (null, MemberCenterUnavailable());
        }
    }

    private static ProblemHttpResult MemberCenterUnavailable() => TypedResults.Problem(statusCode: 503, title: "Member Center unavailable",
        detail: "The tenant's footer of bulk mail (footer text, postal address) could not be read; retry later.");

    private static string? MergeString(ComposeRequest request, string key) =>
        request.Merge?.TryGetValue(key, out var value) == true && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>
    /// The message as the job runner composes it (same composer, same options; the bodies are kept as a job keeps them:
    /// blank means absent). <c>unsubscribe_url</c> is the merge value given, else a placeholder on Member Center.
    /// <paramref name="lang"/>: the reader language to show it as (the request's <c>lang</c>), which also stands in for a
    /// missing <c>lang</c> merge value, as for a subscriber with that preference.
    /// </summary>
    private static OutgoingMessage Compose(ComposeRequest request, string subject, string email, SmtpOptions smtp, SenderIdentity sender,
        string? from, MemberCenterOptions memberCenter, MailFooter? footer, string? lang, string? to = null)
    {
        var unsubscribe = MergeString(request, "unsubscribe_url") ?? memberCenter.BaseUrl.TrimEnd('/') + "/newsletter/unsubscribe?token=preview";
        var preferences = (request.Merge ?? new Dictionary<string, JsonElement>())
            .Where(kv => kv.Key is not ("email" or "unsubscribe_url"))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        if (lang is not null)
        {
            preferences.TryAdd("lang", JsonSerializer.SerializeToElement(lang));
        }
        // The same footer as the job's run adds (BulkFooter), in the language a recipient with these merge values gets:
        // the lang asked for, else their lang, else the list's default (English without a list), so the preview and the test show it.
        var (html, text) = footer is null
            ? (string.IsNullOrWhiteSpace(request.BodyHtml) ? null : request.BodyHtml, string.IsNullOrWhiteSpace(request.BodyText) ? null : request.BodyText)
            : BulkFooter.Apply(string.IsNullOrWhiteSpace(request.BodyHtml) ? null : request.BodyHtml,
                string.IsNullOrWhiteSpace(request.BodyText) ? null : request.BodyText, footer, lang ?? BulkFooter.LanguageOf(preferences, footer));
        var composer = new MessageComposer(smtp, sender.Dkim, subject, html, text,
            from: from is null ? null : new MessageAddress(string.IsNullOrWhiteSpace(request.FromName) ? null : request.FromName.Trim(), from));
        var message = composer.Compose(new MergeData(email, unsubscribe, preferences));
        if (to is null || to == message.To)
        {
            return message;
        }
        // The merge may name another subscriber's address ({{ email }}); the test itself goes to `to`.
        return new OutgoingMessage
        {
            From = message.From, To = to, ReplyTo = message.ReplyTo, Subject = message.Subject, MessageId = message.MessageId,
            Date = message.Date, Headers = message.Headers, TextBody = message.TextBody, HtmlBody = message.HtmlBody, Rendering = message.Rendering,
        };
    }
}

/// <summary>
/// At most <see cref="PerMinute"/> test sends per tenant in any minute (sliding window, per process): a test send is
/// a real message, and a console button must not become a way around jobs' suppressions and rate limits.
/// </summary>
public sealed class TestSendLimiter : IDisposable
{
    public const int PerMinute = 10;

    private readonly PartitionedRateLimiter<Guid> _limiter = PartitionedRateLimiter.Create<Guid, Guid>(tenant =>
        RateLimitPartition.GetSlidingWindowLimiter(tenant, _ => new SlidingWindowRateLimiterOptions
        {
            PermitLimit = PerMinute,
            Window = TimeSpan.FromMinutes(1),
            SegmentsPerWindow = 6,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    public RateLimitLease Acquire(Guid tenantId) => _limiter.AttemptAcquire(tenantId);

    public void Dispose() => _limiter.Dispose();
}
