using Newsletter.Contracts.SenderDomains;

namespace SendEngine.Features.SenderDomains;

/// <summary>One record the tenant publishes; <see cref="Key"/> names it in the stored check results.</summary>
public sealed record ExpectedRecord(string Purpose, string Type, string Name, string Value, bool Required, string? Selector = null,
    DateTimeOffset? RetiresAt = null, string? PublicKey = null)
{
    public string Key => Purpose + "|" + Name;
}

/// <summary>What a check found for one record.</summary>
public sealed record StoredCheck(string Status, List<string> Found, string? Detail);

/// <summary>
/// The DNS records a sender domain needs (docs/deliverability.md): a DKIM TXT per published key, an SPF include of the
/// platform on the domain, the return-path domain's MX (bounces reach the platform) and SPF (the envelope sender the
/// receiver checks SPF on, which aligns with From in DMARC's relaxed mode because it is a subdomain), and a DMARC record.
/// </summary>
public static class SenderDomainRecords
{
    public static string ReturnPathDomain(string domain, SenderDomainOptions o) => o.ReturnPathLabel + "." + domain;

    public static string DkimValue(string publicKey) => "v=DKIM1; k=rsa; p=" + publicKey;

    public static string SpfValue(SenderDomainOptions o, string all) => $"v=spf1 include:{o.SpfInclude} {all}";

    /// <param name="keys">The domain's published keys: the current one first, then rotated-out ones still in their overlap.</param>
    public static List<ExpectedRecord> Expected(string domain, IEnumerable<SenderDomainKey> keys, SenderDomainOptions o)
    {
        var records = new List<ExpectedRecord>();
        foreach (var k in keys)
        {
            // Only the key that signs now is required; a rotated-out one is listed so messages signed with it still verify.
            records.Add(new ExpectedRecord(DnsRecordPurposes.Dkim, "TXT", $"{k.Selector}._domainkey.{domain}", DkimValue(k.PublicKey),
                k.SupersededAt is null, k.Selector, k.SupersededAt + o.RotationOverlap, k.PublicKey));
        }
        var returnPath = ReturnPathDomain(domain, o);
        records.Add(new ExpectedRecord(DnsRecordPurposes.ReturnPathMx, "MX", returnPath, "10 " + o.BounceMxHost, true));
        records.Add(new ExpectedRecord(DnsRecordPurposes.ReturnPathSpf, "TXT", returnPath, SpfValue(o, "-all"), true));
        // The From domain's own SPF matters for mail whose envelope is the From address (before verification) and for
        // receivers that check it; merge the include into an existing record rather than publishing a second one.
        records.Add(new ExpectedRecord(DnsRecordPurposes.Spf, "TXT", domain, SpfValue(o, "~all"), false));
        var rua = o.DmarcReportAddress is { Length: > 0 } a ? "; rua=mailto:" + a : "";
        records.Add(new ExpectedRecord(DnsRecordPurposes.Dmarc, "TXT", "_dmarc." + domain, "v=DMARC1; p=none" + rua, false));
        return records;
    }
}
