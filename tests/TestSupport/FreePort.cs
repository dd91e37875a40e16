using System.Net;
using System.Net.Sockets;

namespace Newsletter.TestSupport;

/// <summary>Hands out loopback TCP ports that were free a moment ago.</summary>
public static class FreePort
{
    /// <summary>
    /// Asks the OS for an ephemeral port on 127.0.0.1 and releases it. Another process can in principle grab
    /// it before the caller binds, so callers that start servers retry on "address in use".
    /// </summary>
    public static int Get()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
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
