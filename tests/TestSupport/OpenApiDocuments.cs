using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Newsletter.TestSupport;

/// <summary>
/// The committed API documents under docs/openapi/ (what tenants generate clients from) and the served ones: the drift
/// tests compare them; with NEWSLETTER_UPDATE_OPENAPI=1 (scripts/openapi.sh --update) they rewrite the committed file.
/// </summary>
public static class OpenApiDocuments
{
    public const string UpdateVariable = "NEWSLETTER_UPDATE_OPENAPI";
    public const string UpdateCommand = "scripts/openapi.sh --update";

    public static readonly string[] Names = ["member-center", "send-engine"];

    private static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        // Summaries keep their quotes and non-ASCII readable in the committed file.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Directory => Path.Combine(RepoPaths.Root, "docs", "openapi");

    public static string CommittedPath(string name) => Path.Combine(Directory, name + ".json");

    /// <summary>One formatting for both sides, so only a change of content counts as drift.</summary>
    public static string Normalise(string json) =>
        (JsonNode.Parse(json) ?? throw new InvalidDataException("The document is JSON null.")).ToJsonString(Indented).ReplaceLineEndings("\n") + "\n";

    /// <summary>
    /// Null when the served document equals the committed one (or it was just rewritten because
    /// NEWSLETTER_UPDATE_OPENAPI=1); otherwise the first differing lines and how to update.
    /// </summary>
    public static async Task<string?> CompareWithCommittedAsync(string name, string servedJson, CancellationToken ct = default)
    {
        var served = Normalise(servedJson);
        var path = CommittedPath(name);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            await File.WriteAllTextAsync(path, served, ct).ConfigureAwait(false);
            return null;
        }
        var committed = File.Exists(path) ? Normalise(await File.ReadAllTextAsync(path, ct).ConfigureAwait(false)) : "";
        if (committed == served)
        {
            return null;
        }
        var want = committed.Split('\n');
        var got = served.Split('\n');
        var line = 0;
        while (line < want.Length && line < got.Length && want[line] == got[line])
        {
            line++;
        }
        string Excerpt(string[] lines) => string.Join("\n", lines.Skip(Math.Max(0, line - 3)).Take(8));
        return $"""
            The served {name} document differs from docs/openapi/{name}.json (first at line {line + 1}).
            If the API change is intended, run `{UpdateCommand}` (or set {UpdateVariable}=1 for this test) and commit the file.
            --- committed ---
            {Excerpt(want)}
            --- served ---
            {Excerpt(got)}
            """;
    }
}
