using System.Buffers;
using System.Net;
using System.Text.RegularExpressions;

namespace SendEngine.Composition;

/// <summary>The tag syntax of a template: <c>{{ tag }}</c> (bulk jobs, the seed's handlebars) or Mailchimp's <c>*|TAG|*</c>.</summary>
public enum MergeSyntax
{
    Handlebars,
    Mailchimp,
}

/// <summary>Where a template's tags get their values.</summary>
public interface IMergeValues
{
    /// <summary>The value of a tag, or null (rendered empty).</summary>
    string? Lookup(string key);
}

/// <summary>
/// A parsed <c>{{ tag }}</c> (or <c>*|TAG|*</c>) template: literal parts and tag names, parsed once per job and rendered
/// per recipient. Unknown tags render empty. In HTML, values are HTML-escaped.
/// </summary>
public sealed partial class MergeTemplate
{
    private readonly string[] _literals;
    private readonly string[] _tags;
    private readonly bool _html;
    private readonly bool _crlf;
    /// <summary>The literals' total length, summed once rather than per recipient.</summary>
    private readonly int _literalLength;

    private MergeTemplate(string[] literals, string[] tags, bool html, bool crlf)
    {
        (_literals, _tags, _html, _crlf) = (literals, tags, html, crlf);
        _literalLength = literals.Sum(l => l.Length);
    }

    /// <param name="crlf">Render with CRLF line endings only (bodies: the message is encoded once, as it goes on the wire).</param>
    /// <param name="syntax">The tag syntax.</param>
    public static MergeTemplate Parse(string template, bool html, bool crlf = false, MergeSyntax syntax = MergeSyntax.Handlebars)
    {
        var literals = new List<string>();
        var tags = new List<string>();
        var last = 0;
        var pattern = syntax == MergeSyntax.Mailchimp ? MailchimpPattern() : TagPattern();
        foreach (Match m in pattern.Matches(template))
        {
            literals.Add(template[last..m.Index]);
            tags.Add(m.Groups[1].Value);
            last = m.Index + m.Length;
        }
        literals.Add(template[last..]);
        if (crlf)
        {
            literals = literals.Select(l => l.ReplaceLineEndings("\r\n")).ToList();
        }
        return new MergeTemplate([.. literals], [.. tags], html, crlf);
    }

    /// <summary>
    /// The template with this recipient's values: only the values are looked up and escaped; the result is written
    /// once at its final length (no StringBuilder growing and copying a body-sized buffer per recipient).
    /// </summary>
    public string Render(IMergeValues data)
    {
        if (_tags.Length == 0)
        {
            return _literals[0];
        }
        var values = ArrayPool<string>.Shared.Rent(_tags.Length);
        try
        {
            var length = _literalLength;
            for (var i = 0; i < _tags.Length; i++)
            {
                var value = data.Lookup(_tags[i]) ?? "";
                if (_crlf && value.AsSpan().IndexOfAny('\r', '\n') >= 0)
                {
                    value = value.ReplaceLineEndings("\r\n");
                }
                value = _html ? WebUtility.HtmlEncode(value) : value;
                values[i] = value;
                length += value.Length;
            }
            return string.Create(length, (_literals, values), static (target, state) =>
            {
                var (literals, values) = state;
                var at = 0;
                for (var i = 0; i < literals.Length - 1; i++)
                {
                    literals[i].CopyTo(target[at..]);
                    at += literals[i].Length;
                    values[i].CopyTo(target[at..]);
                    at += values[i].Length;
                }
                literals[^1].CopyTo(target[at..]);
            });
        }
        finally
        {
            // Cleared: a pooled array must not keep a recipient's values alive.
            ArrayPool<string>.Shared.Return(values, clearArray: true);
        }
    }

    [GeneratedRegex(@"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")]
    private static partial Regex TagPattern();

    [GeneratedRegex(@"\*\|([A-Za-z0-9_:\-]+)\|\*")]
    private static partial Regex MailchimpPattern();
}
