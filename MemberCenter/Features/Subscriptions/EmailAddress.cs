using System.Globalization;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// Validates and normalises addresses: trimmed, domain lower-cased and IDN-encoded (punycode), local part kept
/// as given (RFC 5321 lets servers treat it case-sensitively). The key, fully lower-cased, decides identity.
/// </summary>
public readonly record struct EmailAddress(string Value, string Key)
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };
    private const string AtextSpecials = "!#$%&'*+-/=?^_`{|}~";

    public static bool TryParse(string? input, out EmailAddress address, out string error)
    {
        address = default;
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
        string ascii;
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
            error = "The domain is not a valid host name.";
            return false;
        }
        var value = local + "@" + ascii;
        if (value.Length > 254)
        {
            error = "The email is longer than 254 characters.";
            return false;
        }
        address = new EmailAddress(value, local.ToLowerInvariant() + "@" + ascii);
        error = "";
        return true;
    }

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
