namespace SendEngine.Features.EmailEvents;

/// <summary>
/// A click on a Member Center link (unsubscribe, preference centre, confirm: <c>/newsletter/…?token=…</c>) carries a
/// working credential in its URL. Events keep the click but not the credential: the token is replaced, in the link and
/// in the raw payload, before anything is stored. The idempotency key is computed from the link as received, so a
/// repeated callback is still recognised.
/// </summary>
internal static class LinkRedaction
{
    public const string Redacted = "redacted";

    public static ParsedEmailEvent Apply(ParsedEmailEvent e) =>
        e.Link is { } link && TokenOf(link) is { } token
            ? e with { Link = link.Replace(token, Redacted, StringComparison.Ordinal), Payload = e.Payload.Replace(token, Redacted, StringComparison.Ordinal) }
            : e;

    private static string? TokenOf(string link)
    {
        var query = link.IndexOf('?', StringComparison.Ordinal);
        if (query < 0 || !link.AsSpan(0, query).Contains("/newsletter/", StringComparison.Ordinal))
        {
            return null;
        }
        var end = link.IndexOf('#', query);
        foreach (var part in link[(query + 1)..(end < 0 ? link.Length : end)].Split('&'))
        {
            // Tokens are long (43 characters stored, ~100 stateless); a short value cannot be one and is left alone.
            if (part.StartsWith("token=", StringComparison.Ordinal) && part.Length > "token=".Length + 16)
            {
                return part["token=".Length..];
            }
        }
        return null;
    }
}
