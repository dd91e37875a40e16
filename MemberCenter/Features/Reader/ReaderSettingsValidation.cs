using System.Text.Json;
using System.Text.RegularExpressions;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;

namespace MemberCenter.Features.Reader;

/// <summary>Checks of the preference-field and branding documents, and of subscriber preferences against a list's fields.</summary>
public static partial class ReaderSettingsValidation
{
    public const int MaxFields = 30;
    public const int MaxChoices = 50;
    public const int MaxLabel = 200;
    public const int MaxTextValue = 1000;
    /// <summary>The built-in preference that picks the reader's language; not a tenant field.</summary>
    public const string LanguageKey = "lang";

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,64}$")]
    private static partial Regex KeyPattern();

    [GeneratedRegex("^#[0-9A-Fa-f]{6}$")]
    private static partial Regex ColorPattern();

    /// <summary>A supported tag exactly (any case), canonicalised; else null.</summary>
    public static string? Language(string? tag) =>
        ReaderLanguages.All.FirstOrDefault(l => string.Equals(l, tag?.Trim(), StringComparison.OrdinalIgnoreCase));

    /// <summary>The fields as they will be stored (labels keyed by canonical tags), with errors in <paramref name="v"/>.</summary>
    public static (string DefaultLanguage, List<PreferenceField> Fields) Fields(PreferenceFieldsRequest request, Validation v)
    {
        var defaultLanguage = ReaderLanguages.English;
        if (request.DefaultLanguage is not null)
        {
            defaultLanguage = Language(request.DefaultLanguage) ?? "";
            if (defaultLanguage.Length == 0)
            {
                v.Add("default_language", $"Unknown language; use one of {string.Join(", ", ReaderLanguages.All)}.");
            }
        }
        var fields = request.Fields ?? [];
        if (fields.Count > MaxFields)
        {
            v.Add("fields", $"At most {MaxFields} fields are allowed.");
            return (defaultLanguage, []);
        }
        var result = new List<PreferenceField>(fields.Count);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < fields.Count; i++)
        {
            var f = fields[i];
            var at = $"fields[{i}]";
            if (f is null)
            {
                v.Add(at, "A field must be an object.");
                continue;
            }
            if (string.IsNullOrEmpty(f.Key) || !KeyPattern().IsMatch(f.Key))
            {
                v.Add(at + ".key", "The key is required: 1 to 64 letters, digits, '_', '.' or '-'.");
            }
            else if (f.Key == LanguageKey)
            {
                v.Add(at + ".key", "The key 'lang' is built in (the reader's language) and cannot be a field.");
            }
            else if (!keys.Add(f.Key))
            {
                v.Add(at + ".key", $"The key '{f.Key}' is used by another field.");
            }
            if (f.Type is null || !PreferenceFieldTypes.All.Contains(f.Type))
            {
                v.Add(at + ".type", $"The type must be one of {string.Join(", ", PreferenceFieldTypes.All)}.");
            }
            var labels = Labels(f.Labels, at + ".labels", v);
            var isChoice = f.Type is PreferenceFieldTypes.SingleChoice or PreferenceFieldTypes.MultipleChoice;
            var choices = new List<PreferenceChoice>();
            if (isChoice && (f.Choices is null || f.Choices.Count == 0))
            {
                v.Add(at + ".choices", "A choice field needs at least one choice.");
            }
            else if (!isChoice && f.Choices is { Count: > 0 })
            {
                v.Add(at + ".choices", "Only single_choice and multiple_choice fields have choices.");
            }
            else if (f.Choices is { Count: > MaxChoices })
            {
                v.Add(at + ".choices", $"At most {MaxChoices} choices are allowed.");
            }
            else if (isChoice)
            {
                var values = new HashSet<string>(StringComparer.Ordinal);
                for (var j = 0; j < f.Choices!.Count; j++)
                {
                    var c = f.Choices[j];
                    var cat = $"{at}.choices[{j}]";
                    if (c is null || string.IsNullOrEmpty(c.Value) || c.Value.Length > 100 || !StorableText.IsStorable(c.Value))
                    {
                        v.Add(cat + ".value", "The value is required, at most 100 characters.");
                        continue;
                    }
                    if (!values.Add(c.Value))
                    {
                        v.Add(cat + ".value", $"The value '{c.Value}' is used by another choice.");
                    }
                    choices.Add(new PreferenceChoice(c.Value, Labels(c.Labels, cat + ".labels", v)));
                }
            }
            result.Add(new PreferenceField(f.Key, f.Type, f.Required, labels, isChoice ? choices : null));
        }
        return (defaultLanguage, result);
    }

    private static Dictionary<string, string> Labels(Dictionary<string, string>? labels, string at, Validation v)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (tag, text) in labels ?? [])
        {
            if (Language(tag) is not { } language)
            {
                v.Add(at, $"Unknown language '{Clip(tag)}'; use one of {string.Join(", ", ReaderLanguages.All)}.");
            }
            else if (string.IsNullOrWhiteSpace(text) || text.Length > MaxLabel || !StorableText.IsStorable(text))
            {
                v.Add(at, $"The {language} label must be 1 to {MaxLabel} characters.");
            }
            else
            {
                result[language] = text.Trim();
            }
        }
        return result;
    }

    /// <summary>The branding as it will be stored, with errors in <paramref name="v"/>.</summary>
    public static TenantBranding Branding(Guid tenantId, BrandingRequest request, Validation v)
    {
        v.MaxLength("display_name", request.DisplayName, 200)
            .MaxLength("footer_text", request.FooterText, 2000)
            .MaxLength("postal_address", request.PostalAddress, 500);
        if (!string.IsNullOrEmpty(request.LogoUrl)
            && (request.LogoUrl.Length > 2000
                || !Uri.TryCreate(request.LogoUrl, UriKind.Absolute, out var logo)
                || logo.Scheme != Uri.UriSchemeHttps
                || !string.IsNullOrEmpty(logo.UserInfo)))
        {
            v.Add("logo_url", "The logo_url must be an absolute https URL (at most 2000 characters, no credentials).");
        }
        foreach (var (field, value) in new[] { ("primary_color", request.PrimaryColor), ("accent_color", request.AccentColor) })
        {
            if (!string.IsNullOrEmpty(value) && !ColorPattern().IsMatch(value))
            {
                v.Add(field, "A colour is a hex value like #1d4ed8.");
            }
        }
        foreach (var (field, value) in new[] { ("display_name", request.DisplayName), ("footer_text", request.FooterText), ("postal_address", request.PostalAddress) })
        {
            if (value is not null && !StorableText.IsStorable(value))
            {
                v.Add(field, "The text must not contain NUL characters or unpaired surrogates.");
            }
        }
        var mail = new Dictionary<string, ConfirmationMailText>(StringComparer.Ordinal);
        foreach (var (tag, text) in request.ConfirmationMail ?? [])
        {
            var at = $"confirmation_mail.{Clip(tag)}";
            if (Language(tag) is not { } language)
            {
                v.Add(at, $"Unknown language; use one of {string.Join(", ", ReaderLanguages.All)}.");
                continue;
            }
            if (string.IsNullOrWhiteSpace(text?.Subject) || text.Subject.Length > 200 || text.Subject.Any(char.IsControl) || !StorableText.IsStorable(text.Subject))
            {
                v.Add(at + ".subject", "The subject is required: at most 200 characters, one line.");
            }
            if (string.IsNullOrWhiteSpace(text?.Text) || text.Text.Length > 5000 || !StorableText.IsStorable(text.Text))
            {
                v.Add(at + ".text", "The text is required, at most 5000 characters.");
            }
            else if (!text.Text.Contains("{link}", StringComparison.Ordinal))
            {
                v.Add(at + ".text", "The text must contain {link}, where the confirmation link goes.");
            }
            if (text is not null)
            {
                mail[language] = new ConfirmationMailText(text.Subject?.Trim(), text.Text);
            }
        }
        return new TenantBranding
        {
            TenantId = tenantId,
            DisplayName = Blank(request.DisplayName),
            LogoUrl = Blank(request.LogoUrl),
            PrimaryColor = Blank(request.PrimaryColor)?.ToLowerInvariant(),
            AccentColor = Blank(request.AccentColor)?.ToLowerInvariant(),
            FooterText = Blank(request.FooterText),
            PostalAddress = Blank(request.PostalAddress),
            ConfirmationMail = JsonSerializer.Serialize(mail, ReaderJson.Options),
        };
    }

    /// <summary>
    /// Preferences set through the API or the preference centre, against the list's fields (none: anything goes, as
    /// before). Unknown keys and choices are refused naming the field (errors key <c>preferences.{key}</c>). With
    /// <paramref name="complete"/> (a subscribe) every required field must be given; a merge may not remove one.
    /// </summary>
    public static void Preferences(IReadOnlyList<PreferenceField> fields, Dictionary<string, JsonElement>? preferences, bool complete, Validation v)
    {
        if (fields.Count == 0)
        {
            return;
        }
        var byKey = fields.ToDictionary(f => f.Key!, StringComparer.Ordinal);
        foreach (var (key, value) in preferences ?? [])
        {
            var at = "preferences." + Clip(key);
            if (key == LanguageKey)
            {
                if (value.ValueKind != JsonValueKind.Null && (value.ValueKind != JsonValueKind.String || Language(value.GetString()) is null))
                {
                    v.Add(at, $"The lang preference must be one of {string.Join(", ", ReaderLanguages.All)}.");
                }
                continue;
            }
            if (!byKey.TryGetValue(key, out var field))
            {
                v.Add(at, $"The list has no preference field '{Clip(key)}'.");
                continue;
            }
            if (value.ValueKind == JsonValueKind.Null)
            {
                if (field.Required)
                {
                    v.Add(at, $"The field '{key}' is required and cannot be removed.");
                }
                continue;
            }
            if (ValueError(field, value) is { } error)
            {
                v.Add(at, error);
            }
        }
        if (complete)
        {
            foreach (var field in fields.Where(f => f.Required && (preferences is null || !preferences.ContainsKey(f.Key!))))
            {
                v.Add("preferences." + field.Key, $"The field '{field.Key}' is required.");
            }
        }
    }

    /// <summary>Why a (non-null) value does not fit its field, or null when it does.</summary>
    public static string? ValueError(PreferenceField field, JsonElement value)
    {
        var choices = field.Choices?.Select(c => c.Value).ToHashSet(StringComparer.Ordinal) ?? [];
        switch (field.Type)
        {
            case PreferenceFieldTypes.SingleChoice:
                return value.ValueKind == JsonValueKind.String && choices.Contains(value.GetString())
                    ? null
                    : $"The field '{field.Key}' takes one of: {string.Join(", ", choices)}.";
            case PreferenceFieldTypes.MultipleChoice:
                if (value.ValueKind != JsonValueKind.Array)
                {
                    return $"The field '{field.Key}' takes an array of: {string.Join(", ", choices)}.";
                }
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var item in value.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String || !choices.Contains(item.GetString()) || !seen.Add(item.GetString()!))
                    {
                        return $"The field '{field.Key}' takes each of these at most once: {string.Join(", ", choices)}.";
                    }
                }
                return null;
            case PreferenceFieldTypes.Boolean:
                return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : $"The field '{field.Key}' takes true or false.";
            default:
                return value.ValueKind == JsonValueKind.String && value.GetString()!.Length <= MaxTextValue
                    ? null
                    : $"The field '{field.Key}' takes text of at most {MaxTextValue} characters.";
        }
    }

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    private static string Clip(string s) => s.Length <= 64 ? s : s[..64];
}
