using System.Collections.Frozen;
using System.Text.Json;
using Microsoft.Net.Http.Headers;
using Newsletter.Contracts;

namespace MemberCenter.Features.Reader;

/// <summary>
/// The UI strings of the reader pages and the confirmation mail: one JSON table per language under Strings/ (embedded),
/// edited by translators, not in C#. A key missing in a language falls back to English, then to the key itself.
/// </summary>
public sealed class ReaderText
{
    private readonly FrozenDictionary<string, FrozenDictionary<string, string>> _tables;
    private readonly FrozenDictionary<string, string> _names;

    public ReaderText()
    {
        var assembly = typeof(ReaderText).Assembly;
        var tables = new Dictionary<string, FrozenDictionary<string, string>>(StringComparer.Ordinal);
        foreach (var language in ReaderLanguages.All)
        {
            using var stream = assembly.GetManifestResourceStream($"reader-strings/{language}.json")
                               ?? throw new InvalidOperationException($"The reader strings for {language} are not embedded.");
            var table = JsonSerializer.Deserialize<Dictionary<string, string>>(stream)
                        ?? throw new InvalidOperationException($"The reader strings for {language} are empty.");
            tables[language] = table.ToFrozenDictionary(StringComparer.Ordinal);
        }
        _tables = tables.ToFrozenDictionary(StringComparer.Ordinal);
        _names = tables.ToFrozenDictionary(t => t.Key, t => t.Value.GetValueOrDefault("lang.name") ?? t.Key, StringComparer.Ordinal);
    }

    /// <summary>
    /// The bulk footer's unsubscribe wording in every reader language, from the same tables as the pages (Send Engine
    /// picks per recipient; docs/send-engine.md, Footer).
    /// </summary>
    public IReadOnlyDictionary<string, MailFooterWording> FooterWording() => ReaderLanguages.All.ToDictionary(
        l => l, l => { var t = For(l); return new MailFooterWording(t["mail.footer.unsubscribe"], t["mail.footer.unsubscribe_text"]); },
        StringComparer.Ordinal);

    /// <summary>The keys of one language's table, for the completeness test.</summary>
    public IReadOnlyCollection<string> KeysOf(string language) => _tables[language].Keys;

    public Texts For(string language) => _tables.ContainsKey(language)
        ? new(language, _tables[language], _tables[ReaderLanguages.English], _names)
        : new(ReaderLanguages.English, _tables[ReaderLanguages.English], _tables[ReaderLanguages.English], _names);

    /// <summary>The supported language a tag stands for, or null (<see cref="ReaderLanguages.Normalise"/>).</summary>
    public static string? Normalise(string? tag) => ReaderLanguages.Normalise(tag);

    /// <summary>
    /// The page language: the subscriber's <c>lang</c> preference, else the best Accept-Language match (by q, q=0
    /// never), else the list's default, else English.
    /// </summary>
    public static string Choose(string? preference, IList<StringWithQualityHeaderValue>? acceptLanguage, string? listDefault)
    {
        if (Normalise(preference) is { } fromPreference)
        {
            return fromPreference;
        }
        return FromAcceptLanguage(acceptLanguage) ?? Normalise(listDefault) ?? ReaderLanguages.English;
    }

    /// <summary>The best reader language of an Accept-Language header (by q, q=0 never), or null.</summary>
    public static string? FromAcceptLanguage(IList<StringWithQualityHeaderValue>? acceptLanguage)
    {
        if (acceptLanguage is { Count: > 0 })
        {
            // OrderByDescending is stable: equal weights keep the browser's order.
            foreach (var entry in acceptLanguage.Where(a => (a.Quality ?? 1) > 0).OrderByDescending(a => a.Quality ?? 1))
            {
                if (Normalise(entry.Value.Value) is { } fromBrowser)
                {
                    return fromBrowser;
                }
            }
        }
        return null;
    }
}

/// <summary>One language's strings.</summary>
public sealed class Texts(string language, IReadOnlyDictionary<string, string> table, IReadOnlyDictionary<string, string> english,
    IReadOnlyDictionary<string, string> names)
{
    public string Language => language;

    public string this[string key] => table.GetValueOrDefault(key) ?? english.GetValueOrDefault(key) ?? key;

    /// <summary>A language's own name (its endonym, from its own table), so readers find theirs whatever the page language.</summary>
    public string NameOf(string language) => names.GetValueOrDefault(language) ?? language;

    /// <summary>A plain-text template with its {name} placeholders replaced (for the mail's subject and text part).</summary>
    public static string Fill(string template, IReadOnlyDictionary<string, string> values)
    {
        var result = template;
        foreach (var (name, value) in values)
        {
            result = result.Replace("{" + name + "}", value, StringComparison.Ordinal);
        }
        return result;
    }

    /// <summary>
    /// Splits a template into literal text and placeholders, so a component can render each part encoded (values
    /// emphasised) instead of building HTML from strings.
    /// </summary>
    public static IEnumerable<(string Text, bool IsPlaceholder)> Parts(string template)
    {
        var i = 0;
        while (i < template.Length)
        {
            var open = template.IndexOf('{', i);
            var close = open < 0 ? -1 : template.IndexOf('}', open + 1);
            if (open < 0 || close < 0)
            {
                yield return (template[i..], false);
                yield break;
            }
            if (open > i)
            {
                yield return (template[i..open], false);
            }
            var name = template[(open + 1)..close];
            if (name.Length is > 0 and <= 20 && name.All(c => char.IsAsciiLetterLower(c) || c == '_'))
            {
                yield return (name, true);
            }
            else
            {
                yield return (template[open..(close + 1)], false);
            }
            i = close + 1;
        }
    }
}
