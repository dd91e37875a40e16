using System.Text.Json;
using System.Text.Json.Serialization;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Text PostgreSQL can store: no NUL character (text and jsonb refuse it) and well-formed UTF-16 (a lone surrogate
/// cannot be encoded as UTF-8). Input that breaks either is the caller's 400, found before it reaches the database.
/// </summary>
public static class StorableText
{
    public const string Problem = "Text must not contain NUL characters or unpaired surrogates.";

    public static bool IsStorable(ReadOnlySpan<char> text)
    {
        // Two vectorised searches settle the usual case (no NUL, no surrogate at all); the loop checks the pairs from
        // the first surrogate on. A request's 4 KB HTML body was scanned a character at a time.
        var surrogate = text.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (text[..(surrogate < 0 ? text.Length : surrogate)].Contains('\0'))
        {
            return false;
        }
        if (surrogate < 0)
        {
            return true;
        }
        for (var i = surrogate; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0' || char.IsLowSurrogate(c))
            {
                return false;
            }
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }
                i++;
            }
        }
        return true;
    }

    /// <summary>At most 100 characters and an exponent within ±1000: well inside PostgreSQL's numeric range.</summary>
    public static bool IsStorableNumber(string raw)
    {
        if (raw.Length > 100)
        {
            return false;
        }
        var e = raw.AsSpan().IndexOfAny('e', 'E');
        return e < 0 || (int.TryParse(raw.AsSpan(e + 1), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var exponent)
                         && exponent is >= -1000 and <= 1000);
    }

    /// <summary>Every property name and string value in <paramref name="element"/>, however deep, is storable.</summary>
    public static bool IsStorable(JsonElement element)
    {
        try
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    return IsStorable(element.GetString());
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        if (!IsStorable(property.Name) || !IsStorable(property.Value))
                        {
                            return false;
                        }
                    }
                    return true;
                case JsonValueKind.Array:
                    foreach (var item in element.EnumerateArray())
                    {
                        if (!IsStorable(item))
                        {
                            return false;
                        }
                    }
                    return true;
                case JsonValueKind.Number:
                    // jsonb keeps numbers as numeric, which refuses some JSON numbers (1e200000 overflows it).
                    return IsStorableNumber(element.GetRawText());
                default:
                    return true;
            }
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json refuses to unescape a lone surrogate ("\udc00") into a string.
            return false;
        }
    }
}

/// <summary>Refuses unstorable strings while reading request bodies: a JsonException, answered as a 400 with its path.</summary>
public sealed class StorableStringConverter : JsonConverter<string>
{
    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException("Expected a string.");
        }
        string? value;
        try
        {
            value = reader.GetString();
        }
        catch (InvalidOperationException)
        {
            throw new UnstorableTextException();
        }
        return StorableText.IsStorable(value) ? value : throw new UnstorableTextException();
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>A request body string PostgreSQL cannot store; its message is safe to show to the caller.</summary>
public sealed class UnstorableTextException() : JsonException(StorableText.Problem);
