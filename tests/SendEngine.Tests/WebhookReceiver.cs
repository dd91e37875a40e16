using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>A request the receiver got: its webhook headers and body, as sent.</summary>
public sealed record ReceivedWebhook(string Id, string Timestamp, string Signature, string Body, string ContentType)
{
    public HeaderDictionary Headers => new()
    {
        ["webhook-id"] = Id,
        ["webhook-timestamp"] = Timestamp,
        ["webhook-signature"] = Signature,
    };
}

/// <summary>
/// A loopback HTTP receiver of tenant webhooks (HttpListener on 127.0.0.1): records every request and answers with the
/// status <see cref="Respond"/> picks for the n-th request (1-based), 200 by default.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();
    private int _count;

    public WebhookReceiver(Func<int, int>? respond = null)
    {
        Respond = respond ?? (_ => 200);
        for (var attempt = 1; ; attempt++)
        {
            Port = FreePort.Get();
            _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                _listener.Prefixes.Clear();
            }
        }
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}/hooks";

    public Func<int, int> Respond { get; set; }

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received];

    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(Func<IReadOnlyList<ReceivedWebhook>, bool> done, TimeSpan? timeout = null, string what = "webhooks")
    {
        var limit = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < limit)
        {
            var now = Received;
            if (done(now))
            {
                return now;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what} not received; got {Received.Count}: {string.Join(" | ", Received.Select(r => r.Body))}\n{ServiceLogs.Dump()}");
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (!_listener.IsListening)
            {
                return;
            }
            catch (HttpListenerException)
            {
                return;
            }
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            _received.Enqueue(new ReceivedWebhook(context.Request.Headers["webhook-id"] ?? "", context.Request.Headers["webhook-timestamp"] ?? "",
                context.Request.Headers["webhook-signature"] ?? "", body, context.Request.ContentType ?? ""));
            var status = Respond(Interlocked.Increment(ref _count));
            context.Response.StatusCode = status;
            var answer = Encoding.UTF8.GetBytes($"receiver says {status} " + new string('x', 2000));
            await context.Response.OutputStream.WriteAsync(answer);
            context.Response.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            await _loop;
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
