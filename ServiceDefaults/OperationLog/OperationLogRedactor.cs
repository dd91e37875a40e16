using System.Text.Json;
using System.Text.Json.Nodes;

namespace Newsletter.ServiceDefaults.OperationLog;

/// <summary>
/// Removes secrets from a before/after snapshot: every property, at any depth, named like a secret, password, token,
/// credential or key (<c>client_secret</c>, <c>api_key</c>, <c>signing_key</c>, <c>access_token</c>). Ids of keys
/// (<c>key_id</c>) and display prefixes stay: they name a key without opening anything.
/// </summary>
public static class OperationLogRedactor
{
    private static readonly string[] SecretWords = ["secret", "password", "passwd", "token", "credential", "authorization"];

    public static bool IsSecretName(string name)
    {
        var n = name.ToLowerInvariant();
        if (SecretWords.Any(w => n.Contains(w, StringComparison.Ordinal)))
        {
            return true;
        }
        // "key", "api_key", "apiKey", "signing_key", "private_key_pem"; not "key_id", "keys" (a list of key records).
        var words = n.Replace("-", "_", StringComparison.Ordinal).Split('_', StringSplitOptions.RemoveEmptyEntries);
        return n.EndsWith("key", StringComparison.Ordinal)
            || words.Any(w => w is "key" or "pem" or "pfx" or "certificate") && !n.EndsWith("_id", StringComparison.Ordinal);
    }

    /// <summary>The node with secret properties removed, in place; null stays null.</summary>
    public static JsonNode? Redact(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var name in obj.Select(p => p.Key).ToList())
                {
                    if (IsSecretName(name))
                    {
                        obj.Remove(name);
                    }
                    else
                    {
                        Redact(obj[name]);
                    }
                }
                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    Redact(item);
                }
                break;
        }
        return node;
    }

    /// <summary>Serializes <paramref name="value"/> with the service's JSON options and redacts it.</summary>
    public static JsonNode? ToRedactedNode(object? value, JsonSerializerOptions options) =>
        value is null ? null : Redact(JsonSerializer.SerializeToNode(value, value.GetType(), options));
}
