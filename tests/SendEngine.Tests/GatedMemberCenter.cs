using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// A pass-through proxy in front of the real Member Center that holds every recipients page after the first
/// (requests with <c>after=</c>) until <see cref="Open"/>: a test can see what Send Engine does mid-snapshot. With
/// <see cref="FailReports"/> it answers suppression reports with 503, as a Member Center in trouble would (one that
/// answers). For a Member Center that is down (connections refused), use <see cref="RestartableMemberCenter"/>.
/// </summary>
public sealed class GatedMemberCenter : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream;
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _held;

    public string Url { get; }

    /// <summary>Later pages that have arrived and are waiting at the gate.</summary>
    public int Held => Volatile.Read(ref _held);

    public GatedMemberCenter(string memberCenterUrl)
    {
        _upstream = new HttpClient { BaseAddress = new Uri(memberCenterUrl) };
        Url = $"http://127.0.0.1:{FreePort.Get()}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(Url);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.Run(ForwardAsync);
        _app.StartAsync().GetAwaiter().GetResult();
    }

    public void Open() => _gate.TrySetResult();

    public bool FailReports { get; set; }

    private async Task ForwardAsync(HttpContext http)
    {
        var request = http.Request;
        if (FailReports && request.Path.Value!.EndsWith("/internal/suppressions", StringComparison.Ordinal))
        {
            http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }
        if (request.Path.Value!.EndsWith("/recipients", StringComparison.Ordinal) && request.Query.ContainsKey("after"))
        {
            Interlocked.Increment(ref _held);
            await _gate.Task.WaitAsync(http.RequestAborted);
            Interlocked.Decrement(ref _held);
        }
        using var forward = new HttpRequestMessage(new HttpMethod(request.Method), request.Path + request.QueryString);
        if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
        {
            forward.Content = new StreamContent(request.Body);
            if (request.ContentType is { } type)
            {
                forward.Content.Headers.TryAddWithoutValidation("Content-Type", type);
            }
        }
        foreach (var name in new[] { "Authorization", "Accept" })
        {
            if (request.Headers.TryGetValue(name, out var value))
            {
                forward.Headers.TryAddWithoutValidation(name, value.ToString());
            }
        }
        using var response = await _upstream.SendAsync(forward, http.RequestAborted);
        http.Response.StatusCode = (int)response.StatusCode;
        if (response.Content.Headers.ContentType is { } contentType)
        {
            http.Response.ContentType = contentType.ToString();
        }
        await response.Content.CopyToAsync(http.Response.Body, http.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        Open();
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}
