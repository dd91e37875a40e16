using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.Webhooks;

/// <summary>Thrown when a webhook URL or the address it resolves to is not allowed (SSRF guard).</summary>
public sealed class WebhookTargetRefusedException(string message) : HttpRequestException(message);

/// <summary>
/// The SSRF guard of tenant webhook URLs. On registration: absolute http(s) URL, https outside Development, no user
/// info, and no non-public IP literal or name resolving only to one. On every connection of the dispatcher
/// (<see cref="ConnectAsync"/>, the SocketsHttpHandler ConnectCallback): the name is resolved again and the socket
/// connects to an address that passed the check, so a DNS answer that changed since registration (rebinding) cannot
/// reach an internal service. <see cref="EventWebhookOptions.AllowPrivateNetworks"/> lifts the address checks.
/// </summary>
public sealed class WebhookTargetGuard(IOptions<EventWebhookOptions> options, IHostEnvironment environment)
{
    /// <summary>Why <paramref name="url"/> cannot be registered, or null when it can.</summary>
    public async Task<string?> CheckUrlAsync(string url, CancellationToken ct)
    {
        if (url.Length > 2048 || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            return "The url must be an absolute https URL of at most 2048 characters.";
        }
        if (uri.Scheme == Uri.UriSchemeHttp && !environment.IsDevelopment())
        {
            return "The url must use https.";
        }
        if (uri.UserInfo.Length > 0 || uri.Fragment.Length > 0)
        {
            return "The url must not carry user information or a fragment.";
        }
        if (options.Value.AllowPrivateNetworks)
        {
            return null;
        }
        if (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var literal))
        {
            return IsPublic(literal) ? null : $"The url's address {literal} is not a public address.";
        }
        // RFC 6761: every *.localhost name is loopback, even where the resolver does not know it (localhost itself resolves).
        if (uri.IdnHost.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return "The url's host is not a public address.";
        }
        IPAddress[] addresses;
        try
        {
            addresses = await Dns.GetHostAddressesAsync(uri.IdnHost, ct);
        }
        catch (SocketException)
        {
            // Not resolvable now (a receiver not yet deployed): accepted; every call checks the addresses again.
            return null;
        }
        return addresses.Length > 0 && !addresses.Any(IsPublic) ? "The url's host resolves to no public address." : null;
    }

    /// <summary>Resolves the host, keeps the allowed addresses, and connects to the first that answers.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var allowed = options.Value.AllowPrivateNetworks ? addresses : addresses.Where(IsPublic).ToArray();
        if (allowed.Length == 0)
        {
            throw new WebhookTargetRefusedException(addresses.Length == 0
                ? $"refused: {host} does not resolve"
                : $"refused: {host} resolves to {string.Join(", ", addresses.Select(a => a.ToString()))}, not a public address");
        }
        SocketException? last = null;
        foreach (var address in allowed)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new HttpRequestException($"connecting to {host} failed: {last?.Message}", last);
    }

    /// <summary>
    /// False for loopback, private (RFC 1918), carrier-grade NAT, link-local, unspecified, multicast, broadcast,
    /// reserved and documentation ranges, IPv6 unique-local (fc00::/7), site-local and link-local, and IPv4 embedded in
    /// IPv6 (mapped, NAT64) when the IPv4 address is one of those.
    /// </summary>
    public static bool IsPublic(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return IsPublic(address.MapToIPv4());
        }
        var b = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return !(b[0] is 0 or 10 or 127 || b[0] >= 224                // this network, private, loopback, multicast, reserved, broadcast
                     || b[0] == 100 && (b[1] & 0xC0) == 64                // 100.64.0.0/10 carrier-grade NAT
                     || b[0] == 169 && b[1] == 254                        // link-local (cloud metadata)
                     || b[0] == 172 && (b[1] & 0xF0) == 16                // 172.16.0.0/12
                     || b[0] == 192 && b[1] == 168                        // 192.168.0.0/16
                     || b[0] == 192 && b[1] == 0 && b[2] is 0 or 2        // IETF protocol assignments, TEST-NET-1
                     || b[0] == 198 && (b[1] & 0xFE) == 18                // 198.18.0.0/15 benchmarking
                     || b[0] == 198 && b[1] == 51 && b[2] == 100          // TEST-NET-2
                     || b[0] == 203 && b[1] == 0 && b[2] == 113);         // TEST-NET-3
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }
        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.IPv6None) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal
            || address.IsIPv6Multicast || (b[0] & 0xFE) == 0xFC)         // fc00::/7 unique local
        {
            return false;
        }
        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8)   // 2001:db8::/32 documentation
        {
            return false;
        }
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B)       // 64:ff9b::/96 NAT64: the embedded IPv4 decides
        {
            return IsPublic(new IPAddress(b[12..16]));
        }
        // ::/96 (IPv4-compatible, deprecated) and everything else below 2000::/3 is not global unicast.
        return (b[0] & 0xE0) == 0x20;
    }
}
