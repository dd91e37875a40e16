using System.Globalization;

namespace Newsletter.ServiceDefaults.Mail;

/// <summary>
/// The one rule both services use to tell whether two addresses are the same mailbox: trimmed, domain lower-cased and
/// IDN-encoded (punycode), local part kept as given (RFC 5321 lets servers treat it case-sensitively) in the value, and
/// fully lower-cased in the key, which decides identity. Member Center keys its subscribers by it; Send Engine matches
/// ESP events, suppressions and pending reports to recipients by it.
/// </summary>
public static class EmailAddresses
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };
    private const string AtextSpecials = "!#$%&'*+-/=?^_`{|}~";

    /// <summary>Validates <paramref name="input"/>; on success gives its normalised value and its key.</summary>
    public static bool TryNormalize(string? input, out string value, out string key, out string error)
    {
        value = key = "";
        var s = input?.Trim() ?? "";
        if (s.Length == 0)
        {
            error = "The email field is required.";
            return false;
        }
        var at = s.LastIndexOf('@');
        if (at <= 0 || at == s.Length - 1)
        {
            error = "The email must look like name@example.com.";
            return false;
        }
        var local = s[..at];
        var domain = s[(at + 1)..].TrimEnd('.');
        if (!IsDotAtom(local) || local.Length > 64)
        {
            error = "The part before @ is not a valid mailbox name.";
            return false;
        }
        if (!TryNormalizeDomain(domain, out var ascii, out error))
        {
            return false;
        }
        value = local + "@" + ascii;
        if (value.Length > 254)
        {
            value = "";
            error = "The email is longer than 254 characters.";
            return false;
        }
        key = local.ToLowerInvariant() + "@" + ascii;
        error = "";
        return true;
    }

    /// <summary>
    /// A host name as the address rule stores it (callers trim it first): trailing dot dropped, IDN-encoded (punycode) and
    /// lower-cased; at least two labels, none empty, longer than 63 or starting or ending with a hyphen.
    /// </summary>
    public static bool TryNormalizeDomain(string? input, out string ascii, out string error)
    {
        ascii = "";
        var domain = input?.TrimEnd('.') ?? "";
        try
        {
            ascii = Idn.GetAscii(domain).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            error = "The domain is not a valid host name.";
            return false;
        }
        var labels = ascii.Split('.');
        if (labels.Length < 2 || ascii.Length > 253 || labels.Any(l => l.Length is 0 or > 63 || l[0] == '-' || l[^1] == '-')
            || labels[^1].All(char.IsAsciiDigit))
        {
            ascii = "";
            error = "The domain is not a valid host name.";
            return false;
        }
        error = "";
        return true;
    }

    /// <summary>
    /// The identity key of <paramref name="input"/>; an address the rule refuses (an ESP may report anything) is only
    /// trimmed and lower-cased, so it can still equal itself but never a valid address's key by accident of encoding.
    /// </summary>
    public static string Key(string input) =>
        TryNormalize(input, out _, out var key, out _) ? key : input.Trim().ToLowerInvariant();

    // RFC 5322 dot-atom; non-ASCII letters are allowed for internationalised mailboxes (RFC 6531).
    private static bool IsDotAtom(string local)
    {
        if (local[0] == '.' || local[^1] == '.' || local.Contains("..", StringComparison.Ordinal))
        {
            return false;
        }
        foreach (var c in local)
        {
            var ok = char.IsAsciiLetterOrDigit(c) || c == '.' || AtextSpecials.Contains(c) || (c > 127 && !char.IsWhiteSpace(c) && !char.IsControl(c));
            if (!ok)
            {
                return false;
            }
        }
        return true;
    }
}
