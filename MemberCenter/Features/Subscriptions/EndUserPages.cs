using System.Text.Json;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Reader.Components;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// What people reach from links in email: confirm, unsubscribe (page, form and RFC 8058 one-click) and the
/// preference centre. The token in the link is the only credential, so pages never leak it (no-referrer, no-store);
/// it is also what makes the forms safe from cross-site posting (a forger would need it). Pages are Razor components
/// (Features/Reader/Components) rendered with <see cref="RazorComponentResult"/>: every value is encoded by Razor.
/// </summary>
internal static class EndUserPages
{
    private const string PreferenceFieldPrefix = "pref:";
    private const string SeenFieldPrefix = "seen:";

    public static async Task<IResult> Confirm(string? token, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
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
        var look = await LookAsync(looks, http, result.ListId, result.Lang, ct);
        var values = new Dictionary<string, string> { ["email"] = result.Email ?? "", ["list"] = result.ListName ?? "" };
        return result.Outcome switch
        {
            TokenOutcome.Done => Message(200, look, "confirm.done", values),
            TokenOutcome.AlreadyDone => Message(200, look, "confirm.already", values),
            TokenOutcome.Expired => Message(410, look, "confirm.expired", values),
            _ => Message(404, look, "confirm.invalid", values),
        };
    }

    public static async Task<IResult> UnsubscribePage(string? token, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
    {
        var view = await service.ViewByUnsubscribeTokenAsync(token, ct);
        if (view is null)
        {
            return InvalidLink(looks, http);
        }
        var look = await LookAsync(looks, http, view.ListId, ReaderLooks.LangOf(view.Preferences), ct);
        if (view.Status == SubscriptionStatus.Unsubscribed)
        {
            return Message(200, look, "unsubscribed", new Dictionary<string, string> { ["email"] = Mask(view.Email), ["list"] = view.ListName }, bodyKey: "unsubscribed.body");
        }
        return Page<UnsubscribePage>(200, new()
        {
            [nameof(Reader.Components.UnsubscribePage.Look)] = look,
            [nameof(Reader.Components.UnsubscribePage.ListName)] = view.ListName,
            [nameof(Reader.Components.UnsubscribePage.MaskedEmail)] = Mask(view.Email),
            [nameof(Reader.Components.UnsubscribePage.Token)] = token!,
        });
    }

    /// <summary>POST /newsletter/unsubscribe: JSON {token} from tenant sites, the page's form, or a mail client's one-click.</summary>
    public static async Task<IResult> Unsubscribe(HttpContext http, SubscriptionService service, ReaderLooks looks, IOptions<JsonOptions> json, CancellationToken ct)
    {
        var request = http.Request;
        if (request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(ct);
            // RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the List-Unsubscribe URL, token in its query.
            var oneClick = string.Equals(form["List-Unsubscribe"], "One-Click", StringComparison.OrdinalIgnoreCase);
            var token = oneClick ? request.Query["token"].ToString() : form["token"].ToString();
            var result = await service.UnsubscribeAsync(token, RequestOrigin.From(http, oneClick ? ConsentSources.OneClick : ConsentSources.Link), ct);
            if (result.Outcome is not (TokenOutcome.Done or TokenOutcome.AlreadyDone))
            {
                return oneClick ? TokenProblem(result.Outcome, "unsubscribe") : InvalidLink(looks, http);
            }
            // The one-click answer is read by a mail client, rarely a person; it is the same short page all the same.
            var look = await LookAsync(looks, http, result.ListId, result.Lang, ct);
            return Message(200, look, "unsubscribed", new Dictionary<string, string> { ["email"] = Mask(result.Email), ["list"] = result.ListName ?? "" },
                bodyKey: "unsubscribed.done");
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

    public static async Task<IResult> ManagePage(string? token, HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
    {
        var view = await service.ViewByUnsubscribeTokenAsync(token, ct);
        if (view is null)
        {
            return InvalidLink(looks, http);
        }
        var look = await LookAsync(looks, http, view.ListId, ReaderLooks.LangOf(view.Preferences), ct);
        return ManageForm(look, view, token!, saved: false);
    }

    public static async Task<IResult> SaveManage(HttpContext http, SubscriptionService service, ReaderLooks looks, CancellationToken ct)
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
            return InvalidLink(looks, http);
        }
        var look = await LookAsync(looks, http, current.ListId, ReaderLooks.LangOf(current.Preferences), ct);
        var (changes, error) = look.Fields.Count == 0 ? FreeFormChanges(look, current, form) : FieldChanges(look, form);
        if (error is not null)
        {
            return ManageForm(look, current, token, saved: false, error);
        }
        try
        {
            var view = await service.UpdatePreferencesByTokenAsync(token, changes, RequestOrigin.From(http, ConsentSources.Link), ct);
            if (view is null)
            {
                return InvalidLink(looks, http);
            }
            // The page answers in the language just chosen.
            look = await LookAsync(looks, http, view.ListId, ReaderLooks.LangOf(view.Preferences), ct);
            return ManageForm(look, view, token, saved: true);
        }
        catch (PreferencesTooLargeException)
        {
            return ManageForm(look, current, token, saved: false, error: look.T["manage.error.too_long"]);
        }
    }

    /// <summary>
    /// A list without fields: the page edits the keys the subscription has, each keeping its JSON type, so a form
    /// cannot add keys or turn true into "true".
    /// </summary>
    private static (Dictionary<string, JsonElement> Changes, string? Error) FreeFormChanges(ReaderLook look, SubscriptionView current, IFormCollection form)
    {
        var changes = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (key, old) in current.Preferences)
        {
            if (!form.TryGetValue(PreferenceFieldPrefix + key, out var posted))
            {
                continue;
            }
            if (FromFormValue(old, posted.ToString()) is not { } value)
            {
                return (changes, Fill(look.T["manage.error.kind"], FreeFormLabel(look, key)));
            }
            changes[key] = value;
        }
        return (changes, null);
    }

    /// <summary>
    /// A list with fields: each field the form showed (its seen: marker) is read by its type; an empty value removes
    /// the key unless the field is required. The language (lang) is always offered.
    /// </summary>
    private static (Dictionary<string, JsonElement> Changes, string? Error) FieldChanges(ReaderLook look, IFormCollection form)
    {
        var changes = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (form.ContainsKey(SeenFieldPrefix + ReaderSettingsValidation.LanguageKey))
        {
            var lang = form[PreferenceFieldPrefix + ReaderSettingsValidation.LanguageKey].ToString();
            if (lang.Length == 0)
            {
                changes[ReaderSettingsValidation.LanguageKey] = Null;
            }
            else if (ReaderSettingsValidation.Language(lang) is { } language)
            {
                changes[ReaderSettingsValidation.LanguageKey] = JsonSerializer.SerializeToElement(language);
            }
            else
            {
                return (changes, Fill(look.T["manage.error.choice"], look.T["manage.language"]));
            }
        }
        foreach (var field in look.Fields)
        {
            if (!form.ContainsKey(SeenFieldPrefix + field.Key))
            {
                continue;
            }
            var posted = form[PreferenceFieldPrefix + field.Key];
            var label = look.Label(field);
            JsonElement value;
            switch (field.Type)
            {
                case PreferenceFieldTypes.Boolean:
                    value = JsonSerializer.SerializeToElement(posted.ToString() == "true");
                    break;
                case PreferenceFieldTypes.MultipleChoice:
                    var picked = posted.Where(p => !string.IsNullOrEmpty(p)).Select(p => p!).Distinct(StringComparer.Ordinal).ToList();
                    if (picked.Count == 0 && field.Required)
                    {
                        return (changes, Fill(look.T["manage.error.required"], label));
                    }
                    value = JsonSerializer.SerializeToElement(picked);
                    break;
                default:
                    var text = posted.ToString();
                    if (text.Length == 0)
                    {
                        if (field.Required)
                        {
                            return (changes, Fill(look.T["manage.error.required"], label));
                        }
                        changes[field.Key!] = Null;
                        continue;
                    }
                    if (!StorableText.IsStorable(text))
                    {
                        return (changes, Fill(look.T["manage.error.kind"], label));
                    }
                    value = JsonSerializer.SerializeToElement(text);
                    break;
            }
            if (ReaderSettingsValidation.ValueError(field, value) is not null)
            {
                return (changes, Fill(look.T[field.Type == PreferenceFieldTypes.Text ? "manage.error.too_long" : "manage.error.choice"], label));
            }
            changes[field.Key!] = value;
        }
        return (changes, null);
    }

    private static readonly JsonElement Null = JsonSerializer.SerializeToElement<object?>(null);

    private static string Fill(string template, string field) => Texts.Fill(template, new Dictionary<string, string> { ["field"] = field });

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

    /// <summary>Free-form keys have no labels; the built-in lang key has one in every language.</summary>
    private static string FreeFormLabel(ReaderLook look, string key) => key == ReaderSettingsValidation.LanguageKey ? look.T["manage.language"] : key;

    private static IResult ManageForm(ReaderLook look, SubscriptionView view, string token, bool saved, string? error = null)
    {
        var rows = look.Fields.Count == 0 ? FreeFormRows(look, view) : FieldRows(look, view);
        var model = new ManageModel(view.ListName, Mask(view.Email), SubscriptionService.StatusName(view.Status), token, saved, error, rows);
        return Page<ManagePage>(error is null ? 200 : 422, new()
        {
            [nameof(Reader.Components.ManagePage.Look)] = look,
            [nameof(Reader.Components.ManagePage.Model)] = model,
        });
    }

    private static List<ManageRow> FreeFormRows(ReaderLook look, SubscriptionView view) =>
        view.Preferences.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => new ManageRow(ManageRowKind.Text, PreferenceFieldPrefix + p.Key, FreeFormLabel(look, p.Key),
                p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : p.Value.GetRawText(), false, [], null))
            .ToList();

    private static List<ManageRow> FieldRows(ReaderLook look, SubscriptionView view)
    {
        var current = ReaderSettingsValidation.Language(ReaderLooks.LangOf(view.Preferences));
        var rows = new List<ManageRow>
        {
            new(ManageRowKind.Select, PreferenceFieldPrefix + ReaderSettingsValidation.LanguageKey, look.T["manage.language"], current, false,
                ReaderLanguages.All.Select(l => new ManageOption(l, look.T.NameOf(l), l == current)).ToList(),
                SeenFieldPrefix + ReaderSettingsValidation.LanguageKey),
        };
        foreach (var field in look.Fields)
        {
            view.Preferences.TryGetValue(field.Key!, out var value);
            var seen = SeenFieldPrefix + field.Key;
            var name = PreferenceFieldPrefix + field.Key;
            var label = look.Label(field);
            rows.Add(field.Type switch
            {
                PreferenceFieldTypes.SingleChoice => new ManageRow(ManageRowKind.Select, name, label, null, field.Required,
                    (field.Choices ?? []).Select(c => new ManageOption(c.Value!, look.Label(c),
                        value.ValueKind == JsonValueKind.String && value.GetString() == c.Value)).ToList(), seen),
                PreferenceFieldTypes.MultipleChoice => new ManageRow(ManageRowKind.Checkboxes, name, label, null, field.Required,
                    (field.Choices ?? []).Select(c => new ManageOption(c.Value!, look.Label(c),
                        value.ValueKind == JsonValueKind.Array && value.EnumerateArray().Any(e => e.ValueKind == JsonValueKind.String && e.GetString() == c.Value))).ToList(), seen),
                PreferenceFieldTypes.Boolean => new ManageRow(ManageRowKind.Boolean, name, label, value.ValueKind == JsonValueKind.True ? "true" : "false", false, [], seen),
                _ => new ManageRow(ManageRowKind.Text, name, label, value.ValueKind == JsonValueKind.String ? value.GetString() : null, field.Required, [], seen),
            });
        }
        return rows;
    }

    private static async Task<ReaderLook> LookAsync(ReaderLooks looks, HttpContext http, Guid? listId, string? lang, CancellationToken ct) =>
        listId is { } id
            ? await looks.ForListAsync(id, lang, http.Request.GetTypedHeaders().AcceptLanguage, ct)
            : looks.Anonymous(http.Request.GetTypedHeaders().AcceptLanguage);

    private static IResult InvalidLink(ReaderLooks looks, HttpContext http) =>
        Message(404, looks.Anonymous(http.Request.GetTypedHeaders().AcceptLanguage), "link.invalid", new Dictionary<string, string>());

    private static IResult Message(int status, ReaderLook look, string key, Dictionary<string, string> values, string? bodyKey = null) =>
        Page<MessagePage>(status, new()
        {
            [nameof(MessagePage.Look)] = look,
            [nameof(MessagePage.TitleKey)] = key + ".title",
            [nameof(MessagePage.BodyKey)] = bodyKey ?? key + ".body",
            [nameof(MessagePage.Values)] = values,
        });

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

    private static ReaderPageResult<T> Page<T>(int status, Dictionary<string, object?> parameters) where T : IComponent => new(status, parameters);

    /// <summary>A reader page: the component rendered by Razor, with the headers that keep its token in the page.</summary>
    private sealed class ReaderPageResult<T>(int status, Dictionary<string, object?> parameters) : IResult where T : IComponent
    {
        public Task ExecuteAsync(HttpContext http)
        {
            var headers = http.Response.Headers;
            headers[HeaderNames.CacheControl] = "no-store";
            headers["Referrer-Policy"] = "no-referrer";
            headers["X-Frame-Options"] = "DENY";
            headers[HeaderNames.ContentLanguage] = parameters.TryGetValue("Look", out var look) && look is ReaderLook l ? l.T.Language : ReaderLanguages.English;
            // As before, plus https images for the tenant's logo.
            headers[HeaderNames.ContentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; img-src https:; form-action 'self'; frame-ancestors 'none'";
            return new RazorComponentResult<T>(parameters) { StatusCode = status, ContentType = "text/html; charset=utf-8" }.ExecuteAsync(http);
        }
    }
}
