using System.Text;

namespace Newsletter.ServiceDefaults.Data;

/// <summary>
/// Prefix searches as index ranges in code point order (byte order of UTF-8, PostgreSQL's "C" collation): a prefix is
/// the range [prefix, Successor(prefix)), which a btree index in that collation answers whatever the database's own.
/// </summary>
public static class CodePointOrder
{
    /// <summary>The least string greater than every string that starts with <paramref name="prefix"/>: the last code
    /// point plus one. Null when there is none.</summary>
    public static string? Successor(string prefix)
    {
        var runes = prefix.EnumerateRunes().ToList();
        while (runes.Count > 0)
        {
            var last = runes[^1].Value;
            runes.RemoveAt(runes.Count - 1);
            if (last == 0x10FFFF)
            {
                continue;
            }
            var next = last == 0xD7FF ? 0xE000 : last + 1;
            var sb = new StringBuilder();
            foreach (var r in runes)
            {
                sb.Append(r.ToString());
            }
            return sb.Append(new Rune(next).ToString()).ToString();
        }
        return null;
    }
}
