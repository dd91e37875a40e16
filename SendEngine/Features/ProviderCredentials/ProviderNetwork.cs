using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using SendEngine.Features.Webhooks;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>A host a tenant named that Send Engine will not connect to (no public address), or that does not resolve.</summary>
public sealed class ProviderTargetException(string message) : IOException(message);

/// <summary>
/// Where Send Engine may connect for a tenant's provider, and which certificates it accepts. Hosts are resolved at every
/// connection and only public addresses are used (as for webhooks and bounce mailboxes), so a DNS change after the
/// check cannot point delivery at the internal network; <see cref="ProviderCredentialOptions.AllowPrivateNetworks"/>
/// lifts that for tests. Certificates: the system's validation, plus chains ending in
/// <see cref="ProviderCredentialOptions.TrustedCertificates"/> (tests); the host name must match either way.
/// </summary>
public sealed class ProviderNetwork
{
    private readonly ProviderCredentialOptions _options;
    private readonly X509Certificate2Collection _trusted = [];

    public ProviderNetwork(IOptions<ProviderCredentialOptions> options)
    {
        _options = options.Value;
        foreach (var path in _options.TrustedCertificates)
        {
            _trusted.ImportFromPemFile(path);
        }
    }

    public bool AllowPrivateNetworks => _options.AllowPrivateNetworks;

    /// <summary>The address to connect to for <paramref name="host"/>.</summary>
    /// <exception cref="ProviderTargetException">Unresolvable, or no public address where one is required.</exception>
    public Task<IPAddress> ResolveAsync(string host, CancellationToken ct) => ResolveAsync(host, _options.AllowPrivateNetworks, ct);

    public async Task<IPAddress> ResolveAsync(string host, bool allowPrivateNetworks, CancellationToken ct)
    {
        IPAddress[] addresses;
        if (IPAddress.TryParse(host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            try
            {
                addresses = await Dns.GetHostAddressesAsync(host, ct);
            }
            catch (SocketException ex)
            {
                throw new ProviderTargetException($"the host name {host} does not resolve ({ex.SocketErrorCode}: {ex.Message})");
            }
        }
        var usable = allowPrivateNetworks ? addresses : addresses.Where(WebhookTargetGuard.IsPublic).ToArray();
        return usable.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? usable.FirstOrDefault()
            ?? throw new ProviderTargetException(addresses.Length == 0
                ? $"the host name {host} has no address"
                : $"{host} is not a public address ({string.Join(", ", addresses.Select(a => a.ToString()))}); Send Engine does not connect to private networks");
    }

    /// <summary>Opens a TCP connection to host:port within the connect timeout.</summary>
    public async Task<Socket> ConnectAsync(string host, int port, bool allowPrivateNetworks, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            var address = await ResolveAsync(host, allowPrivateNetworks, timeout.Token);
            await socket.ConnectAsync(address, port, timeout.Token);
            return socket;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"connecting to {host}:{port} took longer than {_options.ConnectTimeout} (ProviderCredentials:ConnectTimeout)");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The certificate check for one connection; <paramref name="refused"/> receives why a certificate was refused.</summary>
    public RemoteCertificateValidationCallback CertificateValidation(Action<string>? refused = null) => (_, certificate, chain, errors) =>
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }
        if (errors == SslPolicyErrors.RemoteCertificateChainErrors && certificate is not null && _trusted.Count > 0)
        {
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.CustomTrustStore.AddRange(_trusted);
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (chain is not null)
            {
                foreach (var element in chain.ChainElements)
                {
                    custom.ChainPolicy.ExtraStore.Add(element.Certificate);
                }
            }
            var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            if (custom.Build(leaf))
            {
                return true;
            }
        }
        refused?.Invoke(Describe(errors, chain, certificate));
        return false;
    };

    private static string Describe(SslPolicyErrors errors, X509Chain? chain, X509Certificate? certificate)
    {
        var parts = new List<string>();
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            parts.Add("the server sent no certificate");
        }
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            parts.Add("the certificate is not valid for this host name");
        }
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            var status = chain?.ChainStatus.Select(s => s.Status.ToString()).Distinct().ToList() ?? [];
            parts.Add("the certificate is not trusted" + (status.Count > 0 ? $" ({string.Join(", ", status)})" : ""));
        }
        var subject = certificate?.Subject is { Length: > 0 } s ? $" [{s}]" : "";
        return "certificate refused: " + string.Join("; ", parts) + subject;
    }
}
