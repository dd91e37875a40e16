using Newsletter.ServiceDefaults.Mail;

namespace MemberCenter.Features.Subscriptions;

/// <summary>
/// A validated address: <see cref="Value"/> as stored (domain lower-cased and punycode, local part as given) and
/// <see cref="Key"/>, fully lower-cased, which decides identity. The rule lives in <see cref="EmailAddresses"/>, shared
/// with Send Engine, which matches ESP events and suppressions to recipients by the same key.
/// </summary>
public readonly record struct EmailAddress(string Value, string Key)
{
    public static bool TryParse(string? input, out EmailAddress address, out string error)
    {
        var ok = EmailAddresses.TryNormalize(input, out var value, out var key, out error);
        address = ok ? new EmailAddress(value, key) : default;
        return ok;
    }
}
