using System.Text.Json;

namespace SendEngine.Composition;

/// <summary>The data a message is personalised with.</summary>
public sealed record MergeData(string Email, string UnsubscribeUrl, IReadOnlyDictionary<string, JsonElement> Preferences) : IMergeValues
{
    public string? Lookup(string key) => key switch
    {
        "email" => Email,
        "unsubscribe_url" => UnsubscribeUrl,
        _ => Preferences.TryGetValue(key, out var v)
            ? v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Null or JsonValueKind.Undefined => null,
                _ => v.GetRawText(),
            }
            : null,
    };
}
