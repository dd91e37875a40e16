using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// What people reach from links in email: confirm, unsubscribe (page, form and RFC 8058 one-click) and the
/// preference centre. The token in the link is the only credential, so pages never leak it (no-referrer, no-store).
/// </summary>
internal static class EndUserPages
{
    private const string PreferenceFieldPrefix = "pref:";

    public static async Task<IResult> Confirm(string? token, HttpContext http, SubscriptionService service, CancellationToken ct)
    {
        var result = await service.ConfirmAsync(token ?? "", RequestOrigin.From(http, ConsentSources.Link), ct);
        if (WantsJson(http))
        {
            return result.Outcome switch
            {
                TokenOutcome.Done or TokenOutcome.AlreadyDone => TypedResults.Ok(new ConfirmResponse(result.ListId!.Value.ToString(), result.Email!, SubscriptionStatuses.Confirmed, result.At ?? default)),
                _ => TokenProblem(result.Outcome, "confirmation"),
            };
        }
        return result.Outcome switch
        {
            TokenOutcome.Done => Page(200, "Subscription confirmed", $"<p>Thank you. <strong>{E(result.Email)}</strong> is now subscribed to <strong>{E(result.ListName)}</strong>.</p>"),
            TokenOutcome.AlreadyDone => Page(200, "Already confirmed", $"<p><strong>{E(result.Email)}</strong> was already confirmed for <strong>{E(result.ListName)}</strong>. Nothing else to do.</p>"),
            TokenOutcome.Expired => Page(410, "This link has expired", "<p>Confirmation links are valid for a limited time. Please subscribe again to get a new one.</p>"),
            _ => Page(404, "This link is not valid", "<p>The confirmation link is unknown or was already used. Check that you opened the whole link from the email.</p>"),
        };
    }

    public static async Task<IResult> UnsubscribePage(string? token, SubscriptionService service, CancellationToken ct)
    {
        var view = await service.ViewByUnsubscribeTokenAsync(token, ct);
        if (view is null)
        {
            return InvalidUnsubscribeLink();
        }
        if (view.Status == SubscriptionStatus.Unsubscribed)
        {
            return Page(200, "You are unsubscribed", $"<p><strong>{E(Mask(view.Email))}</strong> no longer receives <strong>{E(view.ListName)}</strong>.</p>");
        }
        return Page(200, "Unsubscribe", $"""
            <p>Stop sending <strong>{E(view.ListName)}</strong> to <strong>{E(Mask(view.Email))}</strong>?</p>
            <form method="post" action="/newsletter/unsubscribe">
              <input type="hidden" name="token" value="{E(token)}">
              <button type="submit" id="unsubscribe">Unsubscribe</button>
            </form>
            <p class="muted"><a href="/newsletter/manage?token={U(token)}">Manage preferences instead</a></p>
            """);
    }

    /// <summary>POST /newsletter/unsubscribe: JSON {token} from tenant sites, the page's form, or a mail client's one-click.</summary>
    public static async Task<IResult> Unsubscribe(HttpContext http, SubscriptionService service, IOptions<JsonOptions> json, CancellationToken ct)
    {
        var request = http.Request;
        if (request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(ct);
            // RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the List-Unsubscribe URL, token in its query.
            var oneClick = string.Equals(form["List-Unsubscribe"], "One-Click", StringComparison.OrdinalIgnoreCase);
            var token = oneClick ? request.Query["token"].ToString() : form["token"].ToString();
            var result = await service.UnsubscribeAsync(token, RequestOrigin.From(http, oneClick ? ConsentSources.OneClick : ConsentSources.Link), ct);
            if (oneClick)
            {
                return result.Outcome is TokenOutcome.Done or TokenOutcome.AlreadyDone
                    ? TypedResults.Text("Unsubscribed.", "text/plain", statusCode: 200)
                    : TokenProblem(result.Outcome, "unsubscribe");
            }
            return result.Outcome is TokenOutcome.Done or TokenOutcome.AlreadyDone
                ? Page(200, "You are unsubscribed", $"<p><strong>{E(Mask(result.Email))}</strong> will no longer receive <strong>{E(result.ListName)}</strong>.</p>")
                : InvalidUnsubscribeLink();
        }

        if (!request.HasJsonContentType())
        {
            return TypedResults.Problem(statusCode: 415, title: "Unsupported media type", detail: "Send JSON {\"token\": \"...\"} or a form.");
        }
        var body = await request.ReadFromJsonAsync<UnsubscribeRequest>(json.Value.SerializerOptions, ct);
        if (string.IsNullOrWhiteSpace(body?.Token))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["token"] = ["The token field is required."] });
        }
        var outcome = await service.UnsubscribeAsync(body.Token, RequestOrigin.From(http, ConsentSources.Api), ct);
        return outcome.Outcome is TokenOutcome.Done or TokenOutcome.AlreadyDone
            ? TypedResults.Ok(new UnsubscribeResponse(outcome.ListId!.Value.ToString(), outcome.Email!, SubscriptionStatuses.Unsubscribed))
            : TokenProblem(outcome.Outcome, "unsubscribe");
    }

    public static async Task<IResult> ManagePage(string? token, SubscriptionService service, CancellationToken ct)
    {
        var view = await service.ViewByUnsubscribeTokenAsync(token, ct);
        return view is null ? InvalidUnsubscribeLink() : ManageForm(view, token!, saved: false);
    }

    public static async Task<IResult> SaveManage(HttpContext http, SubscriptionService service, CancellationToken ct)
    {
        if (!http.Request.HasFormContentType)
        {
            return TypedResults.Problem(statusCode: 415, title: "Unsupported media type", detail: "The preference centre posts a form.");
        }
        var form = await http.Request.ReadFormAsync(ct);
        var token = form["token"].ToString();
        var current = await service.ViewByUnsubscribeTokenAsync(token, ct);
        if (current is null)
        {
            return InvalidUnsubscribeLink();
        }
        // The page edits the keys the subscription has, each keeping its JSON type: a form cannot add keys or turn
        // true into "true".
        var changes = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (key, old) in current.Preferences)
        {
            if (!form.TryGetValue(PreferenceFieldPrefix + key, out var posted))
            {
                continue;
            }
            if (FromFormValue(old, posted.ToString()) is not { } value)
            {
                return ManageForm(current, token, saved: false, error: $"“{key}” needs a value like the one it had.");
            }
            changes[key] = value;
        }
        try
        {
            var view = await service.UpdatePreferencesByTokenAsync(token, changes, RequestOrigin.From(http, ConsentSources.Link), ct);
            return view is null ? InvalidUnsubscribeLink() : ManageForm(view, token, saved: true);
        }
        catch (PreferencesTooLargeException)
        {
            return ManageForm(current, token, saved: false, error: "These values are too long to be saved.");
        }
    }

    /// <summary>A posted field as a value of the same JSON kind as <paramref name="old"/>, or null when it is not one.</summary>
    private static JsonElement? FromFormValue(JsonElement old, string text)
    {
        if (text.Length > 1000 || !StorableText.IsStorable(text))
        {
            return null;
        }
        if (old.ValueKind == JsonValueKind.String)
        {
            return JsonSerializer.SerializeToElement(text);
        }
        try
        {
            using var doc = JsonDocument.Parse(text);
            var parsed = doc.RootElement.Clone();
            var sameKind = parsed.ValueKind == old.ValueKind
                           || (parsed.ValueKind is JsonValueKind.True or JsonValueKind.False && old.ValueKind is JsonValueKind.True or JsonValueKind.False);
            return sameKind && StorableText.IsStorable(parsed) ? parsed : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IResult ManageForm(SubscriptionView view, string token, bool saved, string? error = null)
    {
        var rows = new StringBuilder();
        foreach (var (key, value) in view.Preferences.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var text = value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText();
            rows.Append($"""<label>{E(key)} <input name="{E(PreferenceFieldPrefix + key)}" value="{E(text)}"></label>""");
        }
        if (rows.Length == 0)
        {
            rows.Append("<p class=\"muted\">No preferences are stored for this subscription.</p>");
        }
        var status = SubscriptionService.StatusName(view.Status);
        return Page(error is null ? 200 : 422, "Your preferences", $"""
            {(saved ? "<p class=\"ok\" id=\"saved\">Your preferences were saved.</p>" : "")}
            {(error is null ? "" : $"<p class=\"error\" id=\"error\">{E(error)}</p>")}
            <p><strong>{E(view.ListName)}</strong> for <strong>{E(Mask(view.Email))}</strong> (status: <span id="status">{E(status)}</span>)</p>
            <form method="post" action="/newsletter/manage">
              <input type="hidden" name="token" value="{E(token)}">
              {rows}
              <button type="submit" id="save">Save preferences</button>
            </form>
            {(view.Status == SubscriptionStatus.Unsubscribed ? "" : $"""
            <form method="post" action="/newsletter/unsubscribe">
              <input type="hidden" name="token" value="{E(token)}">
              <button type="submit" id="unsubscribe" class="secondary">Unsubscribe from this list</button>
            </form>
            """)}
            """);
    }

    private static IResult InvalidUnsubscribeLink() =>
        Page(404, "This link is not valid", "<p>The link is unknown or has expired. Use the unsubscribe link of a recent email.</p>");

    private static IResult TokenProblem(TokenOutcome outcome, string what) => outcome == TokenOutcome.Expired
        ? TypedResults.Problem(statusCode: 410, title: "Token expired", detail: $"The {what} token has expired.")
        : TypedResults.Problem(statusCode: 404, title: "Token not found", detail: $"The {what} token is unknown or was already used.");

    private static bool WantsJson(HttpContext http)
    {
        var accept = http.Request.GetTypedHeaders().Accept;
        var json = accept.Where(a => a.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)).Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        var html = accept.Where(a => a.MediaType.Equals("text/html", StringComparison.OrdinalIgnoreCase)).Select(a => a.Quality ?? 1).DefaultIfEmpty(0).Max();
        return json > 0 && json >= html;
    }

    /// <summary>u***@example.com: enough for people to recognise their address, not enough to harvest it.</summary>
    internal static string Mask(string? email)
    {
        if (string.IsNullOrEmpty(email))
        {
            return "";
        }
        var at = email.LastIndexOf('@');
        return at <= 0 ? "***" : email[0] + "***" + email[at..];
    }

    private static string E(string? s) => HtmlEncoder.Default.Encode(s ?? "");
    private static string U(string? s) => UrlEncoder.Default.Encode(s ?? "");

    private static IResult Page(int status, string title, string body) => new HtmlPage(status, $$"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{E(title)}}</title>
        <style>
          body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}
          h1{font-size:1.5rem} .muted{color:#666;font-size:.9rem} .ok{color:#1a7f37} .error{color:#b42318}
          label{display:block;margin:.5rem 0} input{margin-left:.5rem;padding:.3rem}
          button{padding:.5rem 1rem;margin:.5rem 0;cursor:pointer} .secondary{background:#eee;border:1px solid #ccc}
        </style></head>
        <body><main><h1>{{E(title)}}</h1>{{body}}</main></body></html>
        """);

    private sealed class HtmlPage(int status, string html) : IResult
    {
        public Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = status;
            http.Response.ContentType = "text/html; charset=utf-8";
            var headers = http.Response.Headers;
            headers[HeaderNames.CacheControl] = "no-store";
            headers["Referrer-Policy"] = "no-referrer";
            headers["X-Frame-Options"] = "DENY";
            headers[HeaderNames.ContentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
            return http.Response.WriteAsync(html, Encoding.UTF8);
        }
    }

}
