using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.SenderDomains;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// Looks a sender domain's records up (DnsClient.NET, the resolvers of <c>SenderDomains:DnsServers</c> or the system's,
/// no cache: a tenant who just fixed a record must see it) and judges each one ok, missing, wrong (with what was found)
/// or error (the lookup itself failed: SERVFAIL, timeout).
/// </summary>
public sealed class SenderDomainDns
{
    private readonly LookupClient _client;
    private readonly SenderDomainOptions _options;

    public SenderDomainDns(IOptions<SenderDomainOptions> options)
    {
        _options = options.Value;
        var servers = _options.DnsServers.Select(s => SenderDomainOptions.TryParseServer(s, out var ep) ? ep : null).OfType<IPEndPoint>().ToArray();
        var lookup = servers.Length > 0 ? new LookupClientOptions(servers) : new LookupClientOptions();
        lookup.UseCache = false;
        lookup.Timeout = _options.DnsTimeout;
        lookup.Retries = 2;
        lookup.ThrowDnsErrors = false;
        lookup.ContinueOnDnsError = false;
        lookup.UseTcpFallback = true;
        _client = new LookupClient(lookup);
    }

    public async Task<Dictionary<string, StoredCheck>> CheckAsync(IReadOnlyList<ExpectedRecord> records, CancellationToken ct)
    {
        var results = new Dictionary<string, StoredCheck>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            results[r.Key] = await CheckOneAsync(r, ct);
        }
        return results;
    }

    private const string DmarcPrefix = "_dmarc.";

    private async Task<StoredCheck> CheckOneAsync(ExpectedRecord r, CancellationToken ct)
    {
        var check = await CheckNameAsync(r, r.Name, ct);
        if (r.Purpose != DnsRecordPurposes.Dmarc || check.Status != DnsRecordStatuses.Missing || !r.Name.StartsWith(DmarcPrefix, StringComparison.Ordinal))
        {
            return check;
        }
        // No record on the domain itself: receivers then apply the organisational domain's policy (RFC 7489 6.6.3), so
        // a record there covers this subdomain. Simplification: without a public-suffix list the organisational domain
        // is not known, so every parent is tried in turn up to (not including) the last label, as DMARCbis's tree walk
        // does; a suffix such as co.uk publishes no DMARC record, so stopping there or not gives the same answer.
        var labels = r.Name[DmarcPrefix.Length..].Split('.');
        for (var i = 1; i < labels.Length - 1; i++)
        {
            var parent = string.Join('.', labels[i..]);
            var found = await CheckNameAsync(r, DmarcPrefix + parent, ct);
            if (found.Status == DnsRecordStatuses.Ok)
            {
                return found with { Detail = $"no record at {r.Name}; the organisational domain's record at {DmarcPrefix}{parent} applies to it" };
            }
            if (found.Status == DnsRecordStatuses.Error)
            {
                return found;
            }
        }
        return check;
    }

    private async Task<StoredCheck> CheckNameAsync(ExpectedRecord r, string name, CancellationToken ct)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, r.Type == "MX" ? QueryType.MX : QueryType.TXT, QueryClass.IN, ct);
        }
        catch (DnsResponseException ex)
        {
            return new StoredCheck(DnsRecordStatuses.Error, [], "lookup failed: " + ex.Message);
        }
        if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain)
        {
            return new StoredCheck(DnsRecordStatuses.Error, [], "lookup failed: " + response.ErrorMessage);
        }
        if (r.Type == "MX")
        {
            var hosts = response.Answers.MxRecords().Select(m => $"{m.Preference} {m.Exchange.Value.TrimEnd('.')}").ToList();
            var ok = response.Answers.MxRecords().Any(m => string.Equals(m.Exchange.Value.TrimEnd('.'), _options.BounceMxHost.TrimEnd('.'), StringComparison.OrdinalIgnoreCase));
            return hosts.Count == 0 ? new StoredCheck(DnsRecordStatuses.Missing, [], "no MX record")
                : ok ? new StoredCheck(DnsRecordStatuses.Ok, hosts, null)
                : new StoredCheck(DnsRecordStatuses.Wrong, hosts, $"no MX points to {_options.BounceMxHost}");
        }
        // A TXT record's strings are one value (a 2048-bit DKIM key needs more than one 255-byte string).
        var texts = response.Answers.TxtRecords().Select(t => string.Concat(t.Text)).ToList();
        return r.Purpose switch
        {
            DnsRecordPurposes.Dkim => JudgeDkim(r, texts),
            DnsRecordPurposes.Dmarc => Judge(texts.Where(t => t.StartsWith("v=DMARC1", StringComparison.OrdinalIgnoreCase)).ToList(), texts,
                _ => true, "no v=DMARC1 record", ""),
            _ => Judge(texts.Where(t => t.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase)).ToList(), texts,
                t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Any(m => string.Equals(m.TrimStart('+'), "include:" + _options.SpfInclude, StringComparison.OrdinalIgnoreCase)),
                "no v=spf1 record", $"the SPF record does not include:{_options.SpfInclude}"),
        };
    }

    private static StoredCheck Judge(List<string> candidates, List<string> all, Func<string, bool> good, string missing, string wrong)
    {
        if (candidates.Count == 0)
        {
            return new StoredCheck(DnsRecordStatuses.Missing, all, missing);
        }
        if (candidates.Count > 1 && wrong.Length > 0)
        {
            // RFC 7208 4.5: more than one SPF record is a permanent error for the receiver.
            return new StoredCheck(DnsRecordStatuses.Wrong, candidates, "more than one v=spf1 record (receivers treat that as an error)");
        }
        return good(candidates[0]) ? new StoredCheck(DnsRecordStatuses.Ok, candidates, null) : new StoredCheck(DnsRecordStatuses.Wrong, candidates, wrong);
    }

    private static StoredCheck JudgeDkim(ExpectedRecord r, List<string> texts)
    {
        if (texts.Count == 0)
        {
            return new StoredCheck(DnsRecordStatuses.Missing, [], "no TXT record");
        }
        foreach (var t in texts)
        {
            var tags = t.Split(';', StringSplitOptions.RemoveEmptyEntries)
                .Select(p => p.Split('=', 2))
                .Where(p => p.Length == 2)
                .GroupBy(p => p[0].Trim(), StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => string.Concat(g.First()[1].Where(c => !char.IsWhiteSpace(c))), StringComparer.Ordinal);
            if (tags.GetValueOrDefault("p") == r.PublicKey && tags.GetValueOrDefault("k", "rsa") == "rsa" && tags.GetValueOrDefault("v", "DKIM1") == "DKIM1")
            {
                return new StoredCheck(DnsRecordStatuses.Ok, [t], null);
            }
        }
        return new StoredCheck(DnsRecordStatuses.Wrong, texts, "the TXT record does not carry this selector's public key (p=)");
    }
}
