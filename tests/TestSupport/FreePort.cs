using System.Net;
using System.Net.Sockets;

namespace Newsletter.TestSupport;

/// <summary>Hands out loopback TCP ports that were free a moment ago.</summary>
public static class FreePort
{
    /// <summary>
    /// A port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral range where the system offers
    /// one: a port from that range can be taken between this call and the caller's bind by any outgoing connection of
    /// the machine (a test run opens thousands), which once failed a fixture with "address in use". Below the range only
    /// another listener can take it, and the ports are drawn at random from thousands. Falls back to a port the OS picks.
    /// </summary>
    public static int Get()
    {
        var low = EphemeralRangeStart();
        const int floor = 10_000;
        for (var attempt = 0; low - floor > 1_000 && attempt < 100; attempt++)
        {
            var port = Random.Shared.Next(floor, low);
            if (TryBind(port))
            {
                return port;
            }
        }
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var picked = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return picked;
    }

    private static bool TryBind(int port)
    {
        using var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>The first port of Linux's range for outgoing connections (32768 by default); elsewhere the IANA one's.</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 49152;
        }
    }

    /// <summary>True when something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<bool> IsAcceptingAsync(int port, CancellationToken ct = default)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
