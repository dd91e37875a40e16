using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Lists;

/// <summary>
/// GET and PUT /api/lists/{list_id}/preference-fields of Member Center. Each action changes the document the page
/// read and PUTs it whole: add (or replace, same key) a field, remove one, set the default language.
/// </summary>
public sealed class PreferenceFieldsModel(MemberCenterApi mc) : ConsolePage
{
    public MailingListResponse List { get; private set; } = null!;
    public PreferenceFieldsResponse Fields { get; private set; } = new("", ReaderLanguages.English, [], null);

    public async Task OnGetAsync(string listId, CancellationToken ct)
    {
        List = await mc.GetAsync<MailingListResponse>(Path(listId, ""), ct);
        Fields = await mc.GetAsync<PreferenceFieldsResponse>(Path(listId, "/preference-fields"), ct);
    }

    public Task<IActionResult> OnPostLanguageAsync(string listId, string? defaultLanguage, CancellationToken ct) =>
        ChangeAsync(listId, fields => (defaultLanguage, fields), "The default language is saved.", ct);

    public Task<IActionResult> OnPostRemoveAsync(string listId, string? key, CancellationToken ct) =>
        ChangeAsync(listId, fields => (null, fields.Where(f => f.Key != key).ToList()), $"The field {key} is removed.", ct);

    /// <summary>Choices: one a line, "value; English; 繁體中文; 简体中文; 日本語; 한국어" (labels optional, in that order).</summary>
    public Task<IActionResult> OnPostAddAsync(string listId, string? key, string? type, bool required, string? choices, CancellationToken ct)
    {
        var labels = LabelsFrom(ReaderLanguages.All.Select(l => Request.Form["label_" + l].ToString()));
        var choiceList = (choices ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(';', StringSplitOptions.TrimEntries))
            .Select(parts => new PreferenceChoice(parts[0], LabelsFrom(parts.Skip(1))))
            .ToList();
        var field = new PreferenceField(key?.Trim(), type, required, labels, choiceList.Count == 0 ? null : choiceList);
        return ChangeAsync(listId, fields =>
        {
            var next = fields.ToList();
            var at = next.FindIndex(f => f.Key == field.Key);
            if (at >= 0)
            {
                next[at] = field;
            }
            else
            {
                next.Add(field);
            }
            return (null, next);
        }, $"The field {key} is saved.", ct);
    }

    private static Dictionary<string, string> LabelsFrom(IEnumerable<string> texts) =>
        ReaderLanguages.All.Zip(texts).Where(p => !string.IsNullOrWhiteSpace(p.Second)).ToDictionary(p => p.First, p => p.Second.Trim());

    private async Task<IActionResult> ChangeAsync(string listId, Func<List<PreferenceField>, (string? Language, List<PreferenceField> Fields)> change,
        string notice, CancellationToken ct)
    {
        if (!Can(Scopes.SettingsWrite))
        {
            return NotAllowed();
        }
        await OnGetAsync(listId, ct);
        var (language, fields) = change(Fields.Fields);
        if (await TryAsync(async () => Fields = await mc.PutAsync<PreferenceFieldsResponse>(Path(listId, "/preference-fields"),
                new PreferenceFieldsRequest(language ?? Fields.DefaultLanguage, fields), ct)))
        {
            Notice = notice;
        }
        return Page();
    }

    private static string Path(string listId, string rest) => "api/lists/" + ServiceApi.Escape(listId) + rest;

    public static string Labels(Dictionary<string, string>? labels) =>
        labels is null ? "" : string.Join(" · ", labels.Select(l => $"{l.Key}: {l.Value}"));
}
