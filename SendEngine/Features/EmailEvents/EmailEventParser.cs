using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Mail;

namespace SendEngine.Features.EmailEvents;

/// <summary>An event parsed from either payload format, ready to be stored.</summary>
public sealed record ParsedEmailEvent(
    string IdempotencyKey,
    string Format,
    string EventType,
    string RawEventType,
    string MessageId,
    string? SmtpMessageId,
    string Email,
    DateTimeOffset OccurredAt,
    string? Link,
    string? Reason,
    string? BounceType,
    string? UserAgent,
    string? IpAddress,
    string Payload);

public sealed class EmailEventParseException(string detail, IDictionary<string, string[]>? errors = null) : Exception(detail)
{
    public IDictionary<string, string[]> Errors { get; } = errors ?? new Dictionary<string, string[]>();
}

/// <summary>
/// Reads the webhook body: one JSON object, or an array of objects, in the spec 001 format (<c>eventType</c>,
/// <c>messageId</c>, ISO <c>timestamp</c>…) or Tencent's documented callback (<c>event</c>, <c>bulkId</c>, Unix
/// <c>timestamp</c>…). Unknown event types are accepted (normalised to "unknown"); missing or malformed common fields
/// are refused (<see cref="EmailEventParseException"/>) before anything is stored.
/// </summary>
public static class EmailEventParser
{
    public const string SpecFormat = "spec";
    public const string TencentFormat = "tencent";
    public const int MaxEventsPerRequest = 1000;

    /// <summary>Event timestamps before this are refused: no such mail was sent, and dates near
    /// <see cref="DateTimeOffset.MinValue"/> make the processor's date arithmetic (soft-bounce window) throw.</summary>
    public static readonly DateTimeOffset MinTimestamp = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>How far ahead of <c>now</c> an event timestamp may be (clock skew), before it is refused.</summary>
    public static readonly TimeSpan MaxFutureSkew = TimeSpan.FromDays(1);

    /// <summary>Parses the body; <paramref name="now"/> bounds the accepted event timestamps.</summary>
    public static List<ParsedEmailEvent> Parse(ReadOnlyMemory<byte> body, DateTimeOffset now)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException ex)
        {
            throw new EmailEventParseException("The body is not valid JSON: " + ex.Message);
        }
        using (doc)
        {
            var root = doc.RootElement;
            // The raw payload is stored as jsonb, which refuses what PostgreSQL text cannot hold.
            if (!StorableText.IsStorable(root))
            {
                throw new EmailEventParseException("The body contains NUL characters or unpaired surrogates, which cannot be stored.");
            }
            var result = new List<ParsedEmailEvent>();
            if (root.ValueKind == JsonValueKind.Object)
            {
                result.Add(ParseOne(root, "", now));
            }
            else if (root.ValueKind == JsonValueKind.Array)
            {
                var n = root.GetArrayLength();
                if (n is 0 or > MaxEventsPerRequest)
                {
                    throw new EmailEventParseException($"An array of events must hold 1 to {MaxEventsPerRequest} events.");
                }
                var i = 0;
                foreach (var e in root.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Object)
                    {
                        throw new EmailEventParseException($"Event [{i}] is not a JSON object.");
                    }
                    result.Add(ParseOne(e, $"[{i}].", now));
                    i++;
                }
            }
            else
            {
                throw new EmailEventParseException("The body must be a JSON object (one event) or an array of events.");
            }
            return result;
        }
    }

    private static ParsedEmailEvent ParseOne(JsonElement e, string prefix, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>();
        ParsedEmailEvent? parsed = e.TryGetProperty("eventType", out _) ? ParseSpec(e, prefix, errors)
            : e.TryGetProperty("event", out _) ? ParseTencent(e, prefix, errors)
            : null;
        if (parsed is not null && (parsed.OccurredAt < MinTimestamp || parsed.OccurredAt > now + MaxFutureSkew))
        {
            errors[prefix + "timestamp"] = [$"The timestamp must lie between {MinTimestamp:yyyy-MM-dd} and one day from now."];
        }
        if (parsed is null)
        {
            errors.TryAdd(prefix + "event", ["Give eventType (spec format) or event (Tencent's callback format)."]);
        }
        if (errors.Count > 0 || parsed is null)
        {
            throw new EmailEventParseException("The event is missing required fields or has invalid values.", errors);
        }
        return LinkRedaction.Apply(parsed);
    }

    private static ParsedEmailEvent? ParseSpec(JsonElement e, string prefix, Dictionary<string, string[]> errors)
    {
        var raw = RequiredString(e, "eventType", prefix, errors, 64);
        var messageId = RequiredString(e, "messageId", prefix, errors, 255);
        var email = RequiredEmail(e, "email", prefix, errors);
        DateTimeOffset occurred = default;
        if (!e.TryGetProperty("timestamp", out var ts) || ts.ValueKind != JsonValueKind.String
            || !DateTimeOffset.TryParse(ts.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out occurred))
        {
            errors[prefix + "timestamp"] = ["The timestamp must be an ISO 8601 date-time, e.g. 2024-01-01T12:00:00.000Z."];
        }
        var bounceType = OptionalString(e, "bounceType", 32);
        var bounceSubType = OptionalString(e, "bounceSubType", 31);
        if (raw is null || messageId is null || email is null || errors.Count > 0)
        {
            return null;
        }
        var type = raw.ToLowerInvariant() switch
        {
            "delivery" or "delivered" => EmailEventTypes.Delivered,
            "reject" or "rejected" => EmailEventTypes.Rejected,
            "bounce" => string.Equals(bounceType, "Permanent", StringComparison.OrdinalIgnoreCase) ? EmailEventTypes.HardBounce : EmailEventTypes.SoftBounce,
            "open" => EmailEventTypes.Open,
            "click" => EmailEventTypes.Click,
            "unsubscribe" => EmailEventTypes.Unsubscribe,
            "complaint" or "spamreport" => EmailEventTypes.SpamReport,
            _ => EmailEventTypes.Unknown,
        };
        var link = OptionalString(e, "link", 4096);
        return new ParsedEmailEvent(Key(messageId, raw, occurred, link, email), SpecFormat, type, raw, messageId, null, email,
            occurred.ToUniversalTime(), link, OptionalString(e, "reason", 2000),
            bounceType is null ? null : bounceSubType is null ? bounceType : bounceType + "/" + bounceSubType,
            OptionalString(e, "userAgent", 1000), OptionalString(e, "ipAddress", 64), e.GetRawText());
    }

    private static ParsedEmailEvent? ParseTencent(JsonElement e, string prefix, Dictionary<string, string[]> errors)
    {
        var raw = RequiredString(e, "event", prefix, errors, 64);
        // The docs spell it bulkId in the sample and bulkid in the field table.
        var bulkId = OptionalString(e, "bulkId", 255) ?? OptionalString(e, "bulkid", 255);
        var smtpMessageId = OptionalString(e, "messageId", 998);
        if (bulkId is null)
        {
            errors[prefix + "bulkId"] = ["The bulkId field (SendEmail's MessageId) is required."];
        }
        var email = RequiredEmail(e, "email", prefix, errors);
        long seconds = 0;
        if (!e.TryGetProperty("timestamp", out var ts)
            || !(ts.ValueKind == JsonValueKind.Number && ts.TryGetInt64(out seconds)
                 || ts.ValueKind == JsonValueKind.String && long.TryParse(ts.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out seconds))
            || seconds is < 0 or > 253402300799)
        {
            errors[prefix + "timestamp"] = ["The timestamp must be a Unix time in seconds."];
        }
        if (raw is null || bulkId is null || email is null || errors.Count > 0)
        {
            return null;
        }
        var bounceType = OptionalString(e, "bounceType", 32);
        var type = raw.ToLowerInvariant() switch
        {
            "processed" => EmailEventTypes.Processed,
            "deferred" => EmailEventTypes.Deferred,
            "delivered" => EmailEventTypes.Delivered,
            "dropped" => EmailEventTypes.Rejected,
            "bounce" => bounceType?.ToLowerInvariant() is "hard_bounce" or "hard" ? EmailEventTypes.HardBounce : EmailEventTypes.SoftBounce,
            "open" => EmailEventTypes.Open,
            "click" => EmailEventTypes.Click,
            "spamreport" => EmailEventTypes.SpamReport,
            "unsubscribe" => EmailEventTypes.Unsubscribe,
            _ => EmailEventTypes.Unknown,
        };
        var occurred = DateTimeOffset.FromUnixTimeSeconds(seconds);
        var link = OptionalString(e, "link", 4096);
        return new ParsedEmailEvent(Key(bulkId, raw, occurred, link, email), TencentFormat, type, raw, bulkId,
            smtpMessageId, email, occurred, link, OptionalString(e, "reason", 2000), bounceType,
            OptionalString(e, "useragent", 1000) ?? OptionalString(e, "userAgent", 1000), OptionalString(e, "ip", 64), e.GetRawText());
    }

    /// <summary>SHA-256 of message id, event type (as sent), timestamp, link and address: Tencent's retries collapse to one row.</summary>
    public static string Key(string messageId, string rawType, DateTimeOffset occurred, string? link, string email)
    {
        var s = string.Join('\n', messageId, rawType.ToLowerInvariant(),
            occurred.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), link ?? "", email.Trim().ToLowerInvariant());
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));
    }

    private static string? RequiredString(JsonElement e, string name, string prefix, Dictionary<string, string[]> errors, int max)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(v.GetString()))
        {
            errors[prefix + name] = [$"The {name} field is required."];
            return null;
        }
        var s = v.GetString()!.Trim();
        if (s.Length > max)
        {
            errors[prefix + name] = [$"The {name} field must be at most {max} characters."];
            return null;
        }
        return s;
    }

    private static string? RequiredEmail(JsonElement e, string name, string prefix, Dictionary<string, string[]> errors)
    {
        var s = RequiredString(e, name, prefix, errors, 320);
        if (s is not null && (s.IndexOf('@') is <= 0 || s.IndexOf('@') == s.Length - 1))
        {
            errors[prefix + name] = ["The email field must be an email address."];
            return null;
        }
        // Stored as its identity key (lower-case, punycode domain), as suppressions and statistics are keyed.
        return s is null ? null : EmailAddresses.Key(s);
    }

    /// <summary>A string field, or null when absent, not a string, empty; cut to <paramref name="max"/> characters.</summary>
    private static string? OptionalString(JsonElement e, string name, int max)
    {
        if (!e.TryGetProperty(name, out var v))
        {
            return null;
        }
        var s = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Number => v.GetRawText(),
            _ => null,
        };
        if (string.IsNullOrWhiteSpace(s))
        {
            return null;
        }
        return s.Length > max ? s[..max] : s;
    }
}
