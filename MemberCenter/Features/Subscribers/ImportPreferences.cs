using System.Text.Json;
using MemberCenter.Features.Reader;
using Newsletter.Contracts;

namespace MemberCenter.Features.Subscribers;

/// <summary>
/// A CSV cell of a preference column, read as the list's field types it (CSV has only text): a multiple choice is its
/// values separated by <c>;</c>, a boolean is true/false, yes/no or 1/0, lang one of the page languages. The typed
/// value is then checked by the subscribe API's own rule (<see cref="ReaderSettingsValidation.ValueError"/>).
/// </summary>
internal static class ImportPreferences
{
    /// <summary>The value to store, or the reason the cell does not fit its field.</summary>
    public static (object? Value, string? Error) Convert(IReadOnlyList<PreferenceField> fields, string column, string cell)
    {
        if (column == ReaderSettingsValidation.LanguageKey)
        {
            return ReaderSettingsValidation.Language(cell) is { } language
                ? (language, null)
                : (null, $"The lang preference must be one of {string.Join(", ", ReaderLanguages.All)}.");
        }
        // The header was checked against the fields: every other column is one.
        var field = fields.First(f => f.Key == column);
        object typed = field.Type switch
        {
            PreferenceFieldTypes.MultipleChoice => cell.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            PreferenceFieldTypes.Boolean => cell.Trim().ToLowerInvariant() switch
            {
                "true" or "yes" or "1" => (object)true,
                "false" or "no" or "0" => false,
                _ => cell,
            },
            PreferenceFieldTypes.SingleChoice => cell.Trim(),
            _ => cell,
        };
        return ReaderSettingsValidation.ValueError(field, JsonSerializer.SerializeToElement(typed)) is { } error ? (null, error) : (typed, null);
    }
}
