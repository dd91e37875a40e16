using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Newsletter.Contracts;

namespace SendEngine.Composition;

/// <summary>
/// The branded CAN-SPAM footer of bulk mail (Member Center's <see cref="MailFooter"/>: the tenant's footer text, its
/// postal address, the unsubscribe wording of each reader language), with an unsubscribe link when the template has
/// none. Appended to the job's templates before they are parsed, once per language a run uses
/// (<see cref="BulkComposers"/>), so every recipient's message carries it whatever writes the message's bytes later.
/// Transactional mail has none.
/// </summary>
public static partial class BulkFooter
{
    /// <summary>Whether the footer has anything to show (footer text or postal address); else the bodies stay as they are.</summary>
    public static bool HasContent(MailFooter? footer) =>
        footer is not null && (!string.IsNullOrWhiteSpace(footer.FooterText) || !string.IsNullOrWhiteSpace(footer.PostalAddress));

    /// <summary>
    /// The language of a recipient's footer: its <c>lang</c> preference when it names a reader language, else the
    /// list's default language (Member Center's, as the footer carries it).
    /// </summary>
    public static string LanguageOf(IReadOnlyDictionary<string, JsonElement>? preferences, MailFooter footer)
    {
        ArgumentNullException.ThrowIfNull(footer);
        if (preferences is not null && preferences.TryGetValue("lang", out var lang) && lang.ValueKind == JsonValueKind.String
            && ReaderLanguages.Normalise(lang.GetString()) is { } language)
        {
            return language;
        }
        return ReaderLanguages.Normalise(footer.DefaultLanguage) ?? ReaderLanguages.English;
    }

    /// <summary>The bodies with the footer in <paramref name="language"/>; unchanged when the footer has nothing to show.</summary>
    public static (string? Html, string? Text) Apply(string? bodyHtml, string? bodyText, MailFooter? footer, string language)
    {
        if (!HasContent(footer))
        {
            return (bodyHtml, bodyText);
        }
        var lines = new[] { footer!.FooterText, footer.PostalAddress }
            .Where(l => !string.IsNullOrWhiteSpace(l))
            .Select(l => l!.Trim().ReplaceLineEndings("\n"))
            .ToList();
        var wording = footer.Wording.GetValueOrDefault(language)
                      ?? footer.Wording.GetValueOrDefault(footer.DefaultLanguage)
                      ?? footer.Wording.GetValueOrDefault(ReaderLanguages.English);
        return (bodyHtml is null ? null : AppendHtml(bodyHtml, lines, wording), bodyText is null ? null : AppendText(bodyText, lines, wording));
    }

    private static string AppendHtml(string html, List<string> paragraphs, MailFooterWording? wording)
    {
        var block = "\n<div class=\"newsletter-footer\" style=\"margin-top:24px;padding-top:12px;border-top:1px solid #dddddd;"
            + "font-family:sans-serif;font-size:12px;line-height:1.5;color:#555555\">"
            + string.Concat(paragraphs.Select((p, i) => "<p style=\"margin:" + (i == 0 ? "0" : "8px 0 0") + "\">"
                + string.Join("<br>", p.Split('\n').Select(EncodeHtml)) + "</p>"))
            // The link's text is Member Center's wording; without any (an older Member Center), the URL itself.
            + (UnsubscribeTag().IsMatch(html) ? "" : "<p style=\"margin:8px 0 0\"><a href=\"{{ unsubscribe_url }}\" style=\"color:#555555\">"
                + (wording is null ? "{{ unsubscribe_url }}" : EncodeHtml(wording.Unsubscribe)) + "</a></p>")
            + "</div>\n";
        // Inside the body when the template is a whole document, else at its end.
        var close = html.LastIndexOf("</body", StringComparison.OrdinalIgnoreCase);
        return close >= 0 ? html.Insert(close, block) : html + block;
    }

    private static string AppendText(string text, List<string> paragraphs, MailFooterWording? wording)
    {
        var unsubscribe = UnsubscribeTag().IsMatch(text)
            ? ""
            : (wording is null || !wording.UnsubscribeText.Contains("{link}", StringComparison.Ordinal)
                ? "{{ unsubscribe_url }}"
                : EscapeText(wording.UnsubscribeText).Replace("{link}", "{{ unsubscribe_url }}", StringComparison.Ordinal)) + "\n";
        return text.TrimEnd() + "\n\n--\n" + string.Join("\n\n", paragraphs.Select(EscapeText)) + "\n" + unsubscribe;
    }

    /// <summary>The tenant's text, not markup: encoded, braces too, so it cannot become a merge tag.</summary>
    private static string EncodeHtml(string s) =>
        WebUtility.HtmlEncode(s).Replace("{", "&#123;", StringComparison.Ordinal).Replace("}", "&#125;", StringComparison.Ordinal);

    /// <summary>A "{{" in the tenant's text would otherwise be read as a merge tag.</summary>
    private static string EscapeText(string s) => s.Replace("{{", "{ {", StringComparison.Ordinal);

    [GeneratedRegex(@"\{\{\s*unsubscribe_url\s*\}\}")]
    private static partial Regex UnsubscribeTag();
}

/// <summary>
/// A run's composers, one per footer language: the job's templates with the footer of each reader language, parsed
/// once when the run starts (languages whose bodies come out the same share one composer; without a footer there is
/// one). Per message only the recipient's <c>lang</c> picks one: no template work per message.
/// </summary>
public sealed class BulkComposers
{
    private readonly Dictionary<string, MessageComposer> _byLanguage;
    private readonly MessageComposer _default;
    private readonly MailFooter? _footer;

    /// <param name="create">Makes the job's composer from bodies (the runner's own settings: sender, headers, VERP).</param>
    public BulkComposers(string? bodyHtml, string? bodyText, MailFooter? footer, Func<string?, string?, MessageComposer> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        _byLanguage = new Dictionary<string, MessageComposer>(StringComparer.Ordinal);
        if (!BulkFooter.HasContent(footer))
        {
            _default = create(bodyHtml, bodyText);
            return;
        }
        _footer = footer;
        var byBodies = new Dictionary<(string?, string?), MessageComposer>();
        foreach (var language in ReaderLanguages.All)
        {
            var bodies = BulkFooter.Apply(bodyHtml, bodyText, footer, language);
            if (!byBodies.TryGetValue(bodies, out var composer))
            {
                composer = create(bodies.Html, bodies.Text);
                byBodies[bodies] = composer;
            }
            _byLanguage[language] = composer;
        }
        _default = _byLanguage[BulkFooter.LanguageOf(null, footer!)];
    }

    /// <summary>How many distinct composers (parsed template sets) the run holds.</summary>
    public int Count => _byLanguage.Count == 0 ? 1 : _byLanguage.Values.Distinct().Count();

    /// <summary>The composer of a recipient: its <c>lang</c> preference's footer, else the list default's.</summary>
    public MessageComposer For(IReadOnlyDictionary<string, JsonElement> preferences) =>
        _footer is null ? _default : _byLanguage.GetValueOrDefault(BulkFooter.LanguageOf(preferences, _footer), _default);
}
