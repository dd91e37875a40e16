using System.Net;
using System.Text.RegularExpressions;

namespace SendEngine.Composition;

/// <summary>
/// The CAN-SPAM footer of bulk mail: the tenant's postal address (Member Center's branding), and an unsubscribe link
/// when the template has none. Appended to the job's templates once, before they are parsed for the job, so every
/// recipient's message carries it whatever writes the message's bytes later. Transactional mail has none.
/// </summary>
public static partial class BulkFooter
{
    /// <summary>The bodies with the footer; unchanged without a postal address (the job carries a warning instead).</summary>
    public static (string? Html, string? Text) Apply(string? bodyHtml, string? bodyText, string? postalAddress)
    {
        if (string.IsNullOrWhiteSpace(postalAddress))
        {
            return (bodyHtml, bodyText);
        }
        var address = postalAddress.Trim().ReplaceLineEndings("\n");
        return (bodyHtml is null ? null : AppendHtml(bodyHtml, address), bodyText is null ? null : AppendText(bodyText, address));
    }

    private static string AppendHtml(string html, string address)
    {
        // Encoded here (the address is the tenant's text, not markup); braces too, so an address cannot become a merge tag.
        var lines = address.Split('\n').Select(l => WebUtility.HtmlEncode(l).Replace("{", "&#123;", StringComparison.Ordinal)
            .Replace("}", "&#125;", StringComparison.Ordinal));
        var block = "\n<div class=\"newsletter-footer\" style=\"margin-top:24px;padding-top:12px;border-top:1px solid #dddddd;"
            + "font-family:sans-serif;font-size:12px;line-height:1.5;color:#555555\">"
            + "<p style=\"margin:0\">" + string.Join("<br>", lines) + "</p>"
            + (UnsubscribeTag().IsMatch(html) ? "" : "<p style=\"margin:8px 0 0\"><a href=\"{{ unsubscribe_url }}\" style=\"color:#555555\">Unsubscribe</a></p>")
            + "</div>\n";
        // Inside the body when the template is a whole document, else at its end.
        var close = html.LastIndexOf("</body", StringComparison.OrdinalIgnoreCase);
        return close >= 0 ? html.Insert(close, block) : html + block;
    }

    private static string AppendText(string text, string address)
    {
        // A "{{" in the address would otherwise be read as a merge tag.
        var safe = address.Replace("{{", "{ {", StringComparison.Ordinal);
        return text.TrimEnd() + "\n\n--\n" + safe + "\n"
            + (UnsubscribeTag().IsMatch(text) ? "" : "Unsubscribe: {{ unsubscribe_url }}\n");
    }

    [GeneratedRegex(@"\{\{\s*unsubscribe_url\s*\}\}")]
    private static partial Regex UnsubscribeTag();
}
