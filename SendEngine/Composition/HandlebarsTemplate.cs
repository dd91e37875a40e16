using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SendEngine.Composition;

/// <summary>
/// The transactional API's <c>merge_language: handlebars</c> (Mandrill's subset of Handlebars): <c>{{name}}</c>
/// (HTML-escaped in HTML), <c>{{{name}}}</c> (inserted as given), <c>{{#if x}}…{{else}}…{{/if}}</c>,
/// <c>{{#unless x}}</c>, <c>{{#each list}}…{{else}}…{{/each}}</c> with <c>{{this}}</c>, <c>{{field}}</c>,
/// <c>{{@index}}</c>, <c>{{@first}}</c>, <c>{{@last}}</c>, <c>{{@key}}</c>, <c>{{#with obj}}</c>, dotted paths,
/// <c>../</c> and comments <c>{{! … }}</c>. Values are merge vars (JSON: strings, numbers, booleans, arrays, objects);
/// names are case-insensitive and a name not found in the current item is looked up in the enclosing ones, then the
/// merge vars. Nothing is executed: there are no custom helpers or partials; truthiness is Handlebars' (false, null,
/// "", 0 and [] are false). Parsed once per request, rendered per recipient.
/// </summary>
public sealed partial class HandlebarsTemplate
{
    private abstract record Node;
    private sealed record TextNode(string Text) : Node;
    private sealed record ValueNode(PathExpr Path, bool Raw) : Node;
    private sealed record BlockNode(string Helper, PathExpr Path, Node[] Body, Node[] Else) : Node;

    /// <param name="Up">How many <c>../</c> precede the path.</param>
    /// <param name="Segments">Empty for <c>this</c>; a single <c>@name</c> for data variables.</param>
    private sealed record PathExpr(int Up, string[] Segments);

    private static readonly HashSet<string> Helpers = new(StringComparer.Ordinal) { "if", "unless", "each", "with" };

    private readonly Node[] _nodes;
    private readonly bool _html;
    private readonly bool _crlf;

    private HandlebarsTemplate(Node[] nodes, bool html, bool crlf) => (_nodes, _html, _crlf) = (nodes, html, crlf);

    /// <summary>Parses a template; throws <see cref="FormatException"/> naming the first error (an unclosed or stray block).</summary>
    /// <param name="html">Escape <c>{{value}}</c> for HTML.</param>
    /// <param name="crlf">Render with CRLF line endings only.</param>
    public static HandlebarsTemplate Parse(string template, bool html, bool crlf = false)
    {
        var root = new List<Node>();
        // Open blocks: helper, path, the body so far, the else part once {{else}} was seen, which list is filled now.
        var stack = new Stack<(string Helper, PathExpr Path, List<Node> Body, List<Node>? Else, List<Node> Outer)>();
        var current = root;
        var at = 0;
        while (at < template.Length)
        {
            var open = template.IndexOf("{{", at, StringComparison.Ordinal);
            if (open < 0)
            {
                break;
            }
            if (open > at)
            {
                current.Add(new TextNode(Lines(template[at..open], crlf)));
            }
            string inner;
            bool raw;
            int end;
            if (template.AsSpan(open).StartsWith("{{!--"))
            {
                end = template.IndexOf("--}}", open + 5, StringComparison.Ordinal);
                at = end < 0 ? throw new FormatException($"The comment at {open} is not closed with --}}}}.") : end + 4;
                continue;
            }
            if (template.AsSpan(open).StartsWith("{{{"))
            {
                end = template.IndexOf("}}}", open + 3, StringComparison.Ordinal);
                if (end < 0)
                {
                    throw new FormatException($"The {{{{{{ at {open} is not closed with }}}}}}.");
                }
                inner = template[(open + 3)..end].Trim();
                raw = true;
                at = end + 3;
            }
            else
            {
                end = template.IndexOf("}}", open + 2, StringComparison.Ordinal);
                if (end < 0)
                {
                    // Not a tag: kept as text, as the other merge syntaxes keep what they do not recognise.
                    current.Add(new TextNode(Lines(template[open..], crlf)));
                    at = template.Length;
                    break;
                }
                inner = template[(open + 2)..end].Trim();
                raw = false;
                at = end + 2;
            }
            if (inner.StartsWith('!'))
            {
                continue;
            }
            if (!raw && inner.StartsWith('#'))
            {
                var parts = inner[1..].Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (parts.Length != 2 || !Helpers.Contains(parts[0]) || TryPath(parts[1]) is not { } path)
                {
                    throw new FormatException($"Unsupported block {{{{{inner}}}}}: the blocks are #if, #unless, #each and #with, each with one name.");
                }
                var body = new List<Node>();
                stack.Push((parts[0], path, body, null, current));
                current = body;
                continue;
            }
            if (!raw && inner.StartsWith('/'))
            {
                var name = inner[1..].Trim();
                if (stack.Count == 0 || stack.Peek().Helper != name)
                {
                    throw new FormatException(stack.Count == 0
                        ? $"{{{{/{name}}}}} closes no block."
                        : $"{{{{/{name}}}}} closes {{{{#{stack.Peek().Helper}}}}}: expected {{{{/{stack.Peek().Helper}}}}}.");
                }
                var b = stack.Pop();
                current = b.Outer;
                current.Add(new BlockNode(b.Helper, b.Path, [.. b.Body], [.. b.Else ?? []]));
                continue;
            }
            if (!raw && inner == "else")
            {
                if (stack.Count == 0 || stack.Peek().Else is not null)
                {
                    throw new FormatException("{{else}} outside a block, or a second one in the same block.");
                }
                var b = stack.Pop();
                var otherwise = new List<Node>();
                stack.Push((b.Helper, b.Path, b.Body, otherwise, b.Outer));
                current = otherwise;
                continue;
            }
            if (TryPath(inner) is { } valuePath)
            {
                current.Add(new ValueNode(valuePath, raw));
            }
            else
            {
                // Helper calls and anything else unknown stay as written: nothing is evaluated.
                current.Add(new TextNode(Lines(template[open..at], crlf)));
            }
        }
        if (at < template.Length)
        {
            current.Add(new TextNode(Lines(template[at..], crlf)));
        }
        if (stack.Count > 0)
        {
            throw new FormatException($"{{{{#{stack.Peek().Helper}}}}} is not closed with {{{{/{stack.Peek().Helper}}}}}.");
        }
        return new HandlebarsTemplate([.. root], html, crlf);
    }

    /// <summary>Null when the template parses, else why not.</summary>
    public static string? Check(string template)
    {
        try
        {
            Parse(template, html: false);
            return null;
        }
        catch (FormatException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>The template with one recipient's values (<paramref name="lookup"/>: a merge var by name, or null).</summary>
    public string Render(Func<string, JsonElement?> lookup)
    {
        var sb = new StringBuilder();
        RenderNodes(_nodes, new Scope(null, null, lookup, null), sb);
        return sb.ToString();
    }

    /// <summary>One level of context: an item of #each or #with (or the merge vars at the root) and its @data.</summary>
    private sealed record Scope(Scope? Parent, JsonElement? Item, Func<string, JsonElement?>? Root, Dictionary<string, JsonElement>? Data);

    private void RenderNodes(Node[] nodes, Scope scope, StringBuilder sb)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode t:
                    sb.Append(t.Text);
                    break;
                case ValueNode v:
                    var text = Text(Resolve(v.Path, scope));
                    if (_crlf && text.AsSpan().IndexOfAny('\r', '\n') >= 0)
                    {
                        text = text.ReplaceLineEndings("\r\n");
                    }
                    sb.Append(_html && !v.Raw ? WebUtility.HtmlEncode(text) : text);
                    break;
                case BlockNode b:
                    RenderBlock(b, scope, sb);
                    break;
            }
        }
    }

    private void RenderBlock(BlockNode b, Scope scope, StringBuilder sb)
    {
        var value = Resolve(b.Path, scope);
        switch (b.Helper)
        {
            case "if":
                RenderNodes(Truthy(value) ? b.Body : b.Else, scope, sb);
                break;
            case "unless":
                RenderNodes(Truthy(value) ? b.Else : b.Body, scope, sb);
                break;
            case "with":
                if (Truthy(value))
                {
                    RenderNodes(b.Body, new Scope(scope, value, null, null), sb);
                }
                else
                {
                    RenderNodes(b.Else, scope, sb);
                }
                break;
            case "each":
                var any = false;
                if (value is { ValueKind: JsonValueKind.Array } list)
                {
                    var count = list.GetArrayLength();
                    var i = 0;
                    foreach (var item in list.EnumerateArray())
                    {
                        RenderNodes(b.Body, new Scope(scope, item, null, Data(i, count, null)), sb);
                        i++;
                        any = true;
                    }
                }
                else if (value is { ValueKind: JsonValueKind.Object } obj)
                {
                    var props = obj.EnumerateObject().ToList();
                    for (var i = 0; i < props.Count; i++)
                    {
                        RenderNodes(b.Body, new Scope(scope, props[i].Value, null, Data(i, props.Count, props[i].Name)), sb);
                        any = true;
                    }
                }
                if (!any)
                {
                    RenderNodes(b.Else, scope, sb);
                }
                break;
        }
    }

    private static Dictionary<string, JsonElement> Data(int index, int count, string? key)
    {
        var d = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase)
        {
            ["index"] = JsonSerializer.SerializeToElement(index),
            ["first"] = JsonSerializer.SerializeToElement(index == 0),
            ["last"] = JsonSerializer.SerializeToElement(index == count - 1),
        };
        if (key is not null)
        {
            d["key"] = JsonSerializer.SerializeToElement(key);
        }
        return d;
    }

    private static JsonElement? Resolve(PathExpr path, Scope scope)
    {
        var s = scope;
        for (var i = 0; i < path.Up && s.Parent is not null; i++)
        {
            s = s.Parent;
        }
        if (path.Segments.Length == 0)
        {
            return s.Item;
        }
        var first = path.Segments[0];
        if (first.StartsWith('@'))
        {
            // @index and friends belong to the nearest #each.
            for (var d = s; d is not null; d = d.Parent)
            {
                if (d.Data is not null)
                {
                    return d.Data.TryGetValue(first[1..], out var data) ? data : null;
                }
            }
            return null;
        }
        JsonElement? value = null;
        for (var c = s; c is not null; c = c.Parent)
        {
            if (c.Root is not null)
            {
                value = c.Root(first);
                break;
            }
            if (Property(c.Item, first) is { } found)
            {
                value = found;
                break;
            }
        }
        for (var i = 1; i < path.Segments.Length && value is not null; i++)
        {
            value = Property(value, path.Segments[i]);
        }
        return value;
    }

    private static JsonElement? Property(JsonElement? item, string name)
    {
        if (item is not { ValueKind: JsonValueKind.Object } obj)
        {
            return null;
        }
        if (obj.TryGetProperty(name, out var exact))
        {
            return exact;
        }
        foreach (var p in obj.EnumerateObject())
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return p.Value;
            }
        }
        return null;
    }

    private static bool Truthy(JsonElement? v) => v switch
    {
        null => false,
        { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined or JsonValueKind.False } => false,
        { ValueKind: JsonValueKind.String } s => s.GetString()!.Length > 0,
        { ValueKind: JsonValueKind.Number } n => n.GetDouble() != 0,
        { ValueKind: JsonValueKind.Array } a => a.GetArrayLength() > 0,
        _ => true,
    };

    /// <summary>A value as text: strings as given, numbers and booleans as JSON writes them; null, objects and arrays empty.</summary>
    private static string Text(JsonElement? v) => v switch
    {
        { ValueKind: JsonValueKind.String } s => s.GetString()!,
        { ValueKind: JsonValueKind.Number } n => n.GetRawText(),
        { ValueKind: JsonValueKind.True } => "true",
        { ValueKind: JsonValueKind.False } => "false",
        _ => "",
    };

    private static PathExpr? TryPath(string s)
    {
        if (s is "this" or ".")
        {
            return new PathExpr(0, []);
        }
        var up = 0;
        while (s.StartsWith("../", StringComparison.Ordinal))
        {
            up++;
            s = s[3..];
        }
        if (s.StartsWith("this.", StringComparison.Ordinal))
        {
            s = s[5..];
        }
        if (up > 0 && s is "this" or ".")
        {
            return new PathExpr(up, []);
        }
        if (DataVariable().IsMatch(s))
        {
            return new PathExpr(up, [s]);
        }
        return PathPattern().IsMatch(s) ? new PathExpr(up, s.Split('.')) : null;
    }

    private static string Lines(string text, bool crlf) => crlf ? text.ReplaceLineEndings("\r\n") : text;

    [GeneratedRegex(@"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")]
    private static partial Regex PathPattern();

    [GeneratedRegex("^@(index|first|last|key)$")]
    private static partial Regex DataVariable();
}
