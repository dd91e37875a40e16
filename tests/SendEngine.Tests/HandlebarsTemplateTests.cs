using System.Text.Json;
using SendEngine.Composition;

namespace SendEngine.Tests;

/// <summary>The transactional API's handlebars merge language (<see cref="HandlebarsTemplate"/>), rendered from JSON merge values.</summary>
public sealed class HandlebarsTemplateTests
{
    private static string Render(string template, object vars, bool html = true)
    {
        var values = JsonSerializer.SerializeToElement(vars).EnumerateObject()
            .ToDictionary(p => p.Name, p => (JsonElement?)p.Value, StringComparer.OrdinalIgnoreCase);
        return HandlebarsTemplate.Parse(template, html).Render(name => values.GetValueOrDefault(name));
    }

    [Fact]
    public void Values_AreEscapedInHtml_TripleBracesInsertAsGiven_TextIsNotEscaped()
    {
        var vars = new { name = "<b>Ann & Bo</b>", Count = 3, vip = true, missing_is_null = (string?)null };
        Assert.Equal("Hi &lt;b&gt;Ann &amp; Bo&lt;/b&gt; / <b>Ann & Bo</b> / 3 true []",
            Render("Hi {{name}} / {{{ NAME }}} / {{count}} {{vip}} [{{missing_is_null}}{{unknown}}]", vars));
        Assert.Equal("Hi <b>Ann & Bo</b>", Render("Hi {{name}}", vars, html: false));
        // Comments vanish; helper calls (nothing is executed) and lone braces stay as written.
        Assert.Equal("a  b {{upper name}} {{ c", Render("a {{! note }}{{!-- {{name}} --}} b {{upper name}} {{ c", vars, html: false));
    }

    [Fact]
    public void If_Unless_Else_FollowHandlebarsTruthiness()
    {
        var vars = new { yes = "x", empty = "", zero = 0, none = Array.Empty<int>(), list = new[] { 1 }, obj = new { }, f = false };
        const string t = "{{#if yes}}Y{{else}}n{{/if}}{{#if empty}}Y{{else}}n{{/if}}{{#if zero}}Y{{else}}n{{/if}}{{#if none}}Y{{else}}n{{/if}}"
            + "{{#if list}}Y{{else}}n{{/if}}{{#if obj}}Y{{else}}n{{/if}}{{#if f}}Y{{/if}}{{#if absent}}Y{{/if}}{{#unless f}}U{{else}}u{{/unless}}";
        Assert.Equal("YnnnYYU", Render(t, vars));
        // Nested blocks.
        Assert.Equal("both", Render("{{#if a}}{{#if b}}both{{else}}a only{{/if}}{{/if}}", new { a = 1, b = "y" }));
    }

    [Fact]
    public void Each_IteratesArraysAndObjects_WithThisFieldsDataAndOuterNames()
    {
        var vars = new
        {
            currency = "EUR",
            tags = new[] { "a<", "b" },
            products = new[] { new { Name = "Tea", price = 3 }, new { Name = "Cup & saucer", price = 12 } },
            totals = new Dictionary<string, int> { ["net"] = 10, ["tax"] = 2 },
            customer = new { address = new { city = "Oslo" } },
        };
        Assert.Equal("[a&lt;][b]", Render("{{#each tags}}[{{this}}]{{/each}}", vars));
        Assert.Equal("0:Tea 3 EUR,1:Cup &amp; saucer 12 EUR.",
            Render("{{#each products}}{{@index}}:{{name}} {{this.price}} {{currency}}{{#if @last}}.{{else}},{{/if}}{{/each}}", vars));
        Assert.Equal("net=10 tax=2 ", Render("{{#each totals}}{{@key}}={{this}} {{/each}}", vars));
        Assert.Equal("none", Render("{{#each nothing}}x{{else}}none{{/each}}", vars));
        Assert.Equal("Oslo Oslo", Render("{{customer.address.city}} {{#with customer}}{{address.city}}{{/with}}", vars));
        Assert.Equal("Tea:EUR Cup &amp; saucer:EUR ", Render("{{#each products}}{{name}}:{{../currency}} {{/each}}", vars));
    }

    [Theory]
    [InlineData("{{#if a}}open")]
    [InlineData("{{/if}}")]
    [InlineData("{{#if a}}x{{/each}}")]
    [InlineData("{{#each}}x{{/each}}")]
    [InlineData("{{#lookup a b}}x{{/lookup}}")]
    [InlineData("{{else}}")]
    [InlineData("{{#if a}}x{{else}}y{{else}}z{{/if}}")]
    [InlineData("{{{name")]
    public void Malformed_Blocks_AreRefused(string template) => Assert.NotNull(HandlebarsTemplate.Check(template));

    [Fact]
    public void CrlfRendering_NormalisesLiteralsAndValues()
    {
        var t = HandlebarsTemplate.Parse("a\n{{#each l}}{{this}}\n{{/each}}", html: false, crlf: true);
        var l = JsonSerializer.SerializeToElement(new[] { "x\ny" });
        Assert.Equal("a\r\nx\r\ny\r\n", t.Render(n => n == "l" ? l : null));
    }
}
