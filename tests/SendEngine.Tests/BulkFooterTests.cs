using System.Text.Json;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Composition;

namespace SendEngine.Tests;

/// <summary>The branded CAN-SPAM footer appended to a job's templates (no server: the templates and composed messages).</summary>
public sealed class BulkFooterTests
{
    private static readonly SmtpOptions Smtp = new() { FromAddress = "news@example.test" };

    // Member Center's wording (its reader strings) as the internal API hands it over; only the shape matters here.
    private static readonly Dictionary<string, MailFooterWording> Wording = new()
    {
        ["en"] = new("Unsubscribe", "Unsubscribe: {link}"),
        ["ja"] = new("配信停止", "配信停止：{link}"),
        ["ko"] = new("수신 거부", "수신 거부: {link}"),
        ["zh-TW"] = new("取消訂閱", "取消訂閱：{link}"),
        ["zh-CN"] = new("退订", "退订：{link}"),
    };

    private static MailFooter Footer(string? address, string? footerText = null, string defaultLanguage = "en") =>
        new(footerText, address, defaultLanguage, Wording);

    private static MergeData Data(string email, string? lang = null) =>
        new(email, "https://mc.test/newsletter/unsubscribe?token=t", lang is null
            ? new Dictionary<string, JsonElement>()
            : new Dictionary<string, JsonElement> { ["lang"] = JsonSerializer.SerializeToElement(lang) });

    [Fact]
    public void The_address_is_encoded_cannot_become_a_merge_tag_and_the_link_is_added_only_when_missing()
    {
        var (html, text) = BulkFooter.Apply("<p>Hi</p>", "Hi", Footer("A & B <i>\n{{ email }} Street"), "en");
        var message = new MessageComposer(Smtp, null, "S", html, text).Compose(Data("reader@example.test"));
        Assert.Contains("A &amp; B &lt;i&gt;<br>&#123;&#123; email &#125;&#125; Street", message.HtmlBody);
        Assert.Contains("<a href=\"https://mc.test/newsletter/unsubscribe?token=t\" style=\"color:#555555\">Unsubscribe</a>", message.HtmlBody);
        Assert.DoesNotContain("reader@example.test", message.HtmlBody);
        Assert.DoesNotContain("reader@example.test", message.TextBody);
        Assert.Contains("A & B <i>", message.TextBody);
        Assert.Contains("Unsubscribe: https://mc.test/newsletter/unsubscribe?token=t", message.TextBody);

        // A template with its own link gets the address only; a document gets it inside its body.
        var (own, ownText) = BulkFooter.Apply("<html><BODY><a href=\"{{unsubscribe_url}}\">x</a></BODY></html>", "Leave: {{ unsubscribe_url }}",
            Footer("1 Main St"), "en");
        Assert.DoesNotContain(">Unsubscribe<", own);
        Assert.EndsWith("1 Main St</p></div>\n</BODY></html>", own);
        Assert.DoesNotContain("Unsubscribe:", ownText);

        // Nothing to show (no address, no footer text): the templates are left alone (the job carries a warning instead).
        Assert.Equal(("<p>x</p>", "x"), BulkFooter.Apply("<p>x</p>", "x", Footer("  "), "en"));
        Assert.Equal(("<p>x</p>", "x"), BulkFooter.Apply("<p>x</p>", "x", null, "en"));
        Assert.Equal((null, "x\n\n--\n1 Main St\nUnsubscribe: {{ unsubscribe_url }}\n"), BulkFooter.Apply(null, "x\n", Footer("1 Main St"), "en"));
    }

    [Fact]
    public void The_footer_text_comes_before_the_address_encoded_and_the_wording_is_the_recipients_language()
    {
        var footer = Footer("1 Main St", "<b>ACME</b> {{ email }} news", defaultLanguage: "ja");
        var (html, text) = BulkFooter.Apply("<p>Hi</p>", "Hi", footer, "ko");
        Assert.Contains("<p style=\"margin:0\">&lt;b&gt;ACME&lt;/b&gt; &#123;&#123; email &#125;&#125; news</p><p style=\"margin:8px 0 0\">1 Main St</p>", html);
        Assert.Contains(">수신 거부</a>", html);
        Assert.Equal("Hi\n\n--\n<b>ACME</b> { { email }} news\n\n1 Main St\n수신 거부: {{ unsubscribe_url }}\n", text);

        // The language: a recipient's lang preference (normalised like the reader pages), else the list's default.
        Assert.Equal("ko", BulkFooter.LanguageOf(Data("a@example.test", "ko-KR").Preferences, footer));
        Assert.Equal("zh-TW", BulkFooter.LanguageOf(Data("a@example.test", "zh-Hant").Preferences, footer));
        Assert.Equal("ja", BulkFooter.LanguageOf(Data("a@example.test", "fr").Preferences, footer));
        Assert.Equal("ja", BulkFooter.LanguageOf(Data("a@example.test").Preferences, footer));
        Assert.Equal("en", BulkFooter.LanguageOf(null, Footer("1 Main St")));
    }

    [Fact]
    public void A_run_parses_the_templates_once_per_footer_language_and_each_message_picks_its_recipients()
    {
        var created = 0;
        MessageComposer Create(string? html, string? text)
        {
            created++;
            return new MessageComposer(Smtp, null, "S", html, text);
        }

        var composers = new BulkComposers("<p>Hi {{ email }}</p>", "Hi", Footer("1 Main St", defaultLanguage: "zh-CN"), Create);
        Assert.Equal(5, created);
        Assert.Equal(5, composers.Count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Contains(">配信停止</a>", composers.For(Data("a@example.test", "ja").Preferences).Compose(Data("a@example.test", "ja")).HtmlBody);
            Assert.Contains(">退订</a>", composers.For(Data("b@example.test").Preferences).Compose(Data("b@example.test")).HtmlBody);
            Assert.Contains(">Unsubscribe</a>", composers.For(Data("c@example.test", "en-GB").Preferences).Compose(Data("c@example.test")).HtmlBody);
        }
        Assert.Equal(5, created); // nothing parsed per message

        // Templates with their own link: every language's bodies are the same, so one composer serves all.
        created = 0;
        var own = new BulkComposers("<a href=\"{{ unsubscribe_url }}\">x</a>", "{{ unsubscribe_url }}", Footer("1 Main St"), Create);
        Assert.Equal((1, 1), (created, own.Count));

        // No footer: the job's own templates, one composer.
        created = 0;
        var plain = new BulkComposers("<p>x</p>", "x", null, Create);
        Assert.Equal((1, 1), (created, plain.Count));
        Assert.Equal("<p>x</p>", plain.For(Data("d@example.test", "ko").Preferences).Compose(Data("d@example.test")).HtmlBody!.TrimEnd());
    }
}
