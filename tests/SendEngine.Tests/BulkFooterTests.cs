using System.Text.Json;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;

namespace SendEngine.Tests;

/// <summary>The CAN-SPAM footer appended to a job's templates (no server: the templates and one composed message).</summary>
public sealed class BulkFooterTests
{
    private static MergeData Data(string email) =>
        new(email, "https://mc.test/newsletter/unsubscribe?token=t", new Dictionary<string, JsonElement>());

    [Fact]
    public void The_address_is_encoded_cannot_become_a_merge_tag_and_the_link_is_added_only_when_missing()
    {
        var (html, text) = BulkFooter.Apply("<p>Hi</p>", "Hi", "A & B <i>\n{{ email }} Street");
        var message = new MessageComposer(new SmtpOptions { FromAddress = "news@example.test" }, null, "S", html, text).Compose(Data("reader@example.test"));
        Assert.Contains("A &amp; B &lt;i&gt;<br>&#123;&#123; email &#125;&#125; Street", message.HtmlBody);
        Assert.Contains("<a href=\"https://mc.test/newsletter/unsubscribe?token=t\"", message.HtmlBody);
        Assert.DoesNotContain("reader@example.test", message.HtmlBody);
        Assert.DoesNotContain("reader@example.test", message.TextBody);
        Assert.Contains("A & B <i>", message.TextBody);
        Assert.Contains("Unsubscribe: https://mc.test/newsletter/unsubscribe?token=t", message.TextBody);

        // A template with its own link gets the address only; a document gets it inside its body.
        var (own, ownText) = BulkFooter.Apply("<html><BODY><a href=\"{{unsubscribe_url}}\">x</a></BODY></html>", "Leave: {{ unsubscribe_url }}", "1 Main St");
        Assert.DoesNotContain(">Unsubscribe<", own);
        Assert.EndsWith("1 Main St</p></div>\n</BODY></html>", own);
        Assert.DoesNotContain("Unsubscribe:", ownText);

        // No address: the templates are left alone (the job carries a warning instead).
        Assert.Equal(("<p>x</p>", "x"), BulkFooter.Apply("<p>x</p>", "x", "  "));
        Assert.Equal((null, "x\n\n--\n1 Main St\nUnsubscribe: {{ unsubscribe_url }}\n"), BulkFooter.Apply(null, "x\n", "1 Main St"));
    }
}
