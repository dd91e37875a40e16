namespace Newsletter.Contracts;

// What readers see (issue 15 part 2): a list's preference fields and default language, a tenant's branding.
// Member Center owns both; the console edits them through these shapes. JSON is snake_case; label dictionaries are
// keyed by language tag (en, zh-TW, zh-CN, ja, ko) as given.

public static class PreferenceFieldTypes
{
    public const string SingleChoice = "single_choice";
    public const string MultipleChoice = "multiple_choice";
    public const string Text = "text";
    public const string Boolean = "boolean";

    public static readonly IReadOnlyList<string> All = [SingleChoice, MultipleChoice, Text, Boolean];
}

/// <summary>The reader languages the platform ships strings for, in the order pages offer them.</summary>
public static class ReaderLanguages
{
    public const string English = "en";
    public static readonly IReadOnlyList<string> All = ["en", "zh-TW", "zh-CN", "ja", "ko"];

    /// <summary>
    /// The supported language a tag stands for, or null: exact tags case-insensitively, then by script or region
    /// (zh-Hant, zh-HK → zh-TW; zh-Hans, zh, zh-SG → zh-CN; ja-JP → ja; ko-KR → ko; en-GB → en). Shared by Member
    /// Center's pages and Send Engine's bulk footer, so both read a <c>lang</c> preference the same way.
    /// </summary>
    public static string? Normalise(string? tag)
    {
        if (string.IsNullOrWhiteSpace(tag) || tag.Length > 35)
        {
            return null;
        }
        var t = tag.Trim().Replace('_', '-');
        foreach (var language in All)
        {
            if (string.Equals(t, language, StringComparison.OrdinalIgnoreCase))
            {
                return language;
            }
        }
        var parts = t.Split('-');
        var primary = parts[0].ToLowerInvariant();
        var rest = parts.Skip(1).Select(p => p.ToLowerInvariant()).ToList();
        return primary switch
        {
            "en" => "en",
            "ja" => "ja",
            "ko" => "ko",
            "zh" when rest.Contains("hant") || rest.Contains("tw") || rest.Contains("hk") || rest.Contains("mo") => "zh-TW",
            "zh" => "zh-CN",
            _ => null,
        };
    }
}

public sealed record PreferenceChoice(string? Value, Dictionary<string, string>? Labels);

public sealed record PreferenceField(string? Key, string? Type, bool Required, Dictionary<string, string>? Labels, List<PreferenceChoice>? Choices);

/// <summary>PUT body: replaces the list's fields and default language (null: en).</summary>
public sealed record PreferenceFieldsRequest(string? DefaultLanguage, List<PreferenceField>? Fields);

/// <summary>No fields: the list's preferences stay free-form (any key, any JSON value).</summary>
public sealed record PreferenceFieldsResponse(string ListId, string DefaultLanguage, List<PreferenceField> Fields, DateTimeOffset? UpdatedAt);

/// <summary>The confirmation mail in one language; {list} and {link} are replaced, {link} must be in the text.</summary>
public sealed record ConfirmationMailText(string? Subject, string? Text);

/// <summary>PUT body: replaces the tenant's branding. Null fields use the built-in look (and the tenant's name).</summary>
public sealed record BrandingRequest(
    string? DisplayName,
    string? LogoUrl,
    string? PrimaryColor,
    string? AccentColor,
    string? FooterText,
    string? PostalAddress,
    Dictionary<string, ConfirmationMailText>? ConfirmationMail);

public sealed record BrandingResponse(
    string TenantId,
    string? DisplayName,
    string? LogoUrl,
    string? PrimaryColor,
    string? AccentColor,
    string? FooterText,
    string? PostalAddress,
    Dictionary<string, ConfirmationMailText> ConfirmationMail,
    DateTimeOffset? UpdatedAt);
