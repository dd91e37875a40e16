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
/// per recipient. Unknown tags render empty. In HTML, values are HTML-escaped. A body template (<c>crlf</c>) also keeps
/// its literals as the bytes of a 7bit MIME part, with where their lines break, so a recipient's part can be written
/// straight from the literals and the values (<see cref="MergedBody"/>) without a merged string in between.
/// </summary>
public sealed partial class MergeTemplate
{
    /// <summary>RFC 5322 2.1.1: a line of a 7bit part holds at most 998 octets before its CRLF.</summary>
    internal const int MaxLineLength = 998;

    private readonly string[] _literals;
    private readonly string[] _tags;
    private readonly bool _html;
    private readonly bool _crlf;
    /// <summary>The literals' total length, summed once rather than per recipient.</summary>
    private readonly int _literalLength;
    /// <summary>The literals as ASCII bytes when each is ASCII with lines of at most 998 octets; else null (the
    /// recipient's part is merged as text and encoded from that).</summary>
    private readonly byte[][]? _sevenBit;
    /// <summary>Per literal, with <see cref="_sevenBit"/>: the length of its first line (to its first CRLF), of its last
    /// line (after its last CRLF), and whether it has a CRLF at all.</summary>
    private readonly (int First, int Last, bool Breaks)[] _lines = [];

    private MergeTemplate(string[] literals, string[] tags, bool html, bool crlf)
    {
        (_literals, _tags, _html, _crlf) = (literals, tags, html, crlf);
        _literalLength = literals.Sum(l => l.Length);
        if (crlf && literals.All(l => System.Text.Ascii.IsValid(l) && InnerLinesFit(l)))
        {
            _lines = literals.Select(Lines).ToArray();
            _sevenBit = literals.Select(l => System.Text.Encoding.ASCII.GetBytes(l)).ToArray();
        }
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
    public string Render(IMergeValues data) => _tags.Length == 0 ? _literals[0] : Concat(Values(data));

    /// <summary>This recipient's body, rendered in the form a transport asks for (a body template, <c>crlf</c>).</summary>
    public MergedBody Bind(IMergeValues data) => new(this, _tags.Length == 0 ? [] : Values(data));

    /// <summary>The values of the tags, in order: looked up, line endings made CRLF in a body, HTML-escaped in HTML.</summary>
    private string[] Values(IMergeValues data)
    {
        var values = new string[_tags.Length];
        for (var i = 0; i < _tags.Length; i++)
        {
            var value = data.Lookup(_tags[i]) ?? "";
            if (_crlf && value.AsSpan().IndexOfAny('\r', '\n') >= 0)
            {
                value = value.ReplaceLineEndings("\r\n");
            }
            values[i] = _html ? WebUtility.HtmlEncode(value) : value;
        }
        return values;
    }

    internal string Concat(string[] values)
    {
        if (values.Length == 0)
        {
            return _literals[0];
        }
        var length = _literalLength;
        foreach (var value in values)
        {
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

    /// <summary>
    /// The length of the part as 7bit content (the merged text, then a CRLF unless it ends with one), or -1 when it
    /// cannot be 7bit as written: a literal or a value outside ASCII, a value with a line break, or a line longer than
    /// 998 octets. Lines are followed across literals and values from the literals' precomputed line lengths.
    /// </summary>
    internal int SevenBitLength(string[] values)
    {
        if (_sevenBit is null)
        {
            return -1;
        }
        var length = _literalLength;
        var line = 0;
        for (var i = 0; i < _literals.Length; i++)
        {
            var (first, last, breaks) = _lines[i];
            if (!breaks)
            {
                line += first;
            }
            else if (line + first > MaxLineLength)
            {
                return -1;
            }
            else
            {
                line = last;
            }
            if (i < values.Length)
            {
                var value = values[i];
                if (!IsAsciiWithoutBreaks(value))
                {
                    return -1;
                }
                line += value.Length;
                length += value.Length;
            }
        }
        if (line > MaxLineLength)
        {
            return -1;
        }
        return EndsWithCrlf(values) ? length : length + 2;
    }

    /// <summary>Writes the 7bit part <see cref="SevenBitLength"/> measured; returns the octets written.</summary>
    internal int WriteSevenBit(string[] values, Span<byte> target)
    {
        var at = 0;
        for (var i = 0; i < _literals.Length; i++)
        {
            _sevenBit![i].CopyTo(target[at..]);
            at += _sevenBit[i].Length;
            if (i < values.Length)
            {
                at += System.Text.Encoding.ASCII.GetBytes(values[i], target[at..]);
            }
        }
        if (!EndsWithCrlf(values))
        {
            "\r\n"u8.CopyTo(target[at..]);
            at += 2;
        }
        return at;
    }

    /// <summary>Whether the merged text ends with CRLF: its last non-empty literal or value does (values have no line breaks here).</summary>
    private bool EndsWithCrlf(string[] values)
    {
        for (var i = _literals.Length - 1; i >= 0; i--)
        {
            if (i < values.Length && values[i].Length > 0)
            {
                return false;
            }
            if (_literals[i].Length > 0)
            {
                return _literals[i].EndsWith("\r\n", StringComparison.Ordinal);
            }
        }
        return false;
    }

    /// <summary>ASCII without CR or LF: a value that leaves the lines of a 7bit part as the literals make them.</summary>
    private static bool IsAsciiWithoutBreaks(string value) =>
        System.Text.Ascii.IsValid(value) && value.AsSpan().IndexOfAny('\r', '\n') < 0;

    private static (int First, int Last, bool Breaks) Lines(string literal)
    {
        var first = literal.IndexOf("\r\n", StringComparison.Ordinal);
        return first < 0 ? (literal.Length, literal.Length, false) : (first, literal.Length - literal.LastIndexOf("\r\n", StringComparison.Ordinal) - 2, true);
    }

    /// <summary>Whether every line a literal holds whole (between two of its own CRLFs) fits in 998 octets.</summary>
    private static bool InnerLinesFit(string literal)
    {
        var span = literal.AsSpan();
        var first = span.IndexOf("\r\n");
        if (first < 0)
        {
            return true;
        }
        span = span[(first + 2)..];
        while (span.IndexOf("\r\n") is var end and >= 0)
        {
            if (end > MaxLineLength)
            {
                return false;
            }
            span = span[(end + 2)..];
        }
        return true;
    }

    [GeneratedRegex(@"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")]
    private static partial Regex TagPattern();

    [GeneratedRegex(@"\*\|([A-Za-z0-9_:\-]+)\|\*")]
    private static partial Regex MailchimpPattern();
}
