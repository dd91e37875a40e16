using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>One SendEmail call as the stand-in saw it, with its own verdict on the TC3 signature.</summary>
public sealed record TencentCall(string Action, string Version, string Region, bool SignatureValid, string From, string[] Destination,
    string Subject, string? Html, string? Text, string? ReplyTo, string? Unsubscribe, string? SmtpMessageId,
    IReadOnlyDictionary<string, string> SmtpHeaders, string Answer);

/// <summary>
/// A local HTTP server standing in for ses.tencentcloudapi.com: re-verifies each request's TC3-HMAC-SHA256 signature
/// with its own implementation, records the call, and answers like SendEmail (MessageId or Error). Scripted failures
/// per recipient: a queue of error codes (or "HTTP 503", "RAW &lt;body&gt;": a 200 with that body, or "HANG": no answer)
/// returned before success. ListEmailIdentities (the credential check) answers one identity, or AuthFailure for a bad signature.
/// </summary>
public sealed partial class TencentSesStandIn : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Pascal = new() { PropertyNamingPolicy = null };
    private readonly WebApplication _app;
    private readonly string _secretKey;

    public ConcurrentQueue<TencentCall> Calls { get; } = new();
    public ConcurrentDictionary<string, ConcurrentQueue<string>> Script { get; } = new(StringComparer.OrdinalIgnoreCase);
    public string Url { get; }

    public TencentSesStandIn(string secretId, string secretKey)
    {
        _secretKey = secretKey;
        var port = FreePort.Get();
        Url = $"http://127.0.0.1:{port}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(Url);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapPost("/", (Delegate)HandleAsync);
        _app.StartAsync().GetAwaiter().GetResult();
        _ = secretId;
    }

    private async Task<IResult> HandleAsync(HttpContext http)
    {
        using var ms = new MemoryStream();
        await http.Request.Body.CopyToAsync(ms);
        var body = Encoding.UTF8.GetString(ms.ToArray());
        var valid = Verify(http.Request, body);
        if (http.Request.Headers["X-TC-Action"] == "ListEmailIdentities")
        {
            // The read-only call a provider credential check makes: the sender identities of the account.
            var id = Guid.NewGuid().ToString();
            Calls.Enqueue(new TencentCall("ListEmailIdentities", http.Request.Headers["X-TC-Version"].ToString(), http.Request.Headers["X-TC-Region"].ToString(),
                valid, "", [], "", null, null, null, null, null, new Dictionary<string, string>(), valid ? "identities" : "AuthFailure.SignatureFailure"));
            return valid
                ? Results.Json(options: Pascal, data: new { Response = new { EmailIdentities = new[] { new { IdentityName = "sender.example", IdentityType = "DOMAIN", SendingEnabled = true } }, MaxReputationLevel = 2, MaxDailyQuota = 1000, RequestId = id } })
                : Results.Json(options: Pascal, data: new { Response = new { Error = new { Code = "AuthFailure.SignatureFailure", Message = "The provided credentials could not be validated." }, RequestId = id } });
        }
        using var doc = JsonDocument.Parse(body);
        var r = doc.RootElement;
        string? S(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
        string? B64(string name) => r.TryGetProperty("Simple", out var simple) && S(simple, name) is { } b ? Encoding.UTF8.GetString(Convert.FromBase64String(b)) : null;
        var destination = r.GetProperty("Destination").EnumerateArray().Select(x => x.GetString()!).ToArray();
        string answer;
        IResult result;
        var requestId = Guid.NewGuid().ToString();
        if (!valid)
        {
            answer = "AuthFailure.SignatureFailure";
            result = Results.Json(options: Pascal, data: new { Response = new { Error = new { Code = answer, Message = "The provided credentials could not be validated." }, RequestId = requestId } });
        }
        else if (Script.TryGetValue(destination[0], out var queue) && queue.TryDequeue(out var scripted))
        {
            if (scripted == "HANG")
            {
                // Takes the request and never answers, as a call that times out after Tencent accepted it.
                Calls.Enqueue(new TencentCall("SendEmail", "", "", valid, "", destination, "", null, null, null, null, null, new Dictionary<string, string>(), scripted));
                await Task.Delay(Timeout.Infinite, http.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return Results.Empty;
            }
            answer = scripted;
            result = scripted.StartsWith("HTTP ", StringComparison.Ordinal)
                ? Results.StatusCode(int.Parse(scripted[5..], CultureInfo.InvariantCulture))
                : scripted.StartsWith("RAW ", StringComparison.Ordinal)
                ? Results.Text(scripted[4..], "application/json")
                : Results.Json(options: Pascal, data: new { Response = new { Error = new { Code = scripted, Message = "scripted failure " + scripted }, RequestId = requestId } });
        }
        else
        {
            answer = "qcloudses-test-" + Guid.NewGuid().ToString("N");
            result = Results.Json(options: Pascal, data: new { Response = new { MessageId = answer, RequestId = requestId } });
        }
        Calls.Enqueue(new TencentCall(http.Request.Headers["X-TC-Action"].ToString(), http.Request.Headers["X-TC-Version"].ToString(),
            http.Request.Headers["X-TC-Region"].ToString(), valid, S(r, "FromEmailAddress") ?? "", destination, S(r, "Subject") ?? "",
            B64("Html"), B64("Text"), S(r, "ReplyToAddresses"), S(r, "Unsubscribe"), S(r, "SmtpMessageId"),
            S(r, "SmtpHeaders") is { } h ? JsonSerializer.Deserialize<Dictionary<string, string>>(h)! : new Dictionary<string, string>(), answer));
        return result;
    }

    /// <summary>Independent TC3 check: rebuilds the canonical request from what actually arrived.</summary>
    private bool Verify(HttpRequest request, string body)
    {
        var m = AuthPattern().Match(request.Headers.Authorization.ToString());
        if (!m.Success || !long.TryParse(request.Headers["X-TC-Timestamp"], out var ts))
        {
            return false;
        }
        var (date, service, signedHeaders, signature) = (m.Groups["date"].Value, m.Groups["service"].Value, m.Groups["signed"].Value, m.Groups["sig"].Value);
        if (date != DateTimeOffset.FromUnixTimeSeconds(ts).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))
        {
            return false;
        }
        var headers = signedHeaders.Split(';');
        var canonicalHeaders = new StringBuilder();
        foreach (var h in headers)
        {
            var value = h == "host" ? request.Host.Value : request.Headers[h].ToString();
            canonicalHeaders.Append(h).Append(':').Append(value!.Trim().ToLowerInvariant()).Append('\n');
        }
        static string Hex(byte[] b) => string.Concat(b.Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));
        var canonical = $"POST\n/\n\n{canonicalHeaders}\n{signedHeaders}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(body)))}";
        var toSign = $"TC3-HMAC-SHA256\n{ts}\n{date}/{service}/tc3_request\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)))}";
        using var k1 = new HMACSHA256(Encoding.UTF8.GetBytes("TC3" + _secretKey));
        var kDate = k1.ComputeHash(Encoding.UTF8.GetBytes(date));
        using var k2 = new HMACSHA256(kDate);
        var kService = k2.ComputeHash(Encoding.UTF8.GetBytes(service));
        using var k3 = new HMACSHA256(kService);
        var kSigning = k3.ComputeHash(Encoding.UTF8.GetBytes("tc3_request"));
        using var k4 = new HMACSHA256(kSigning);
        return Hex(k4.ComputeHash(Encoding.UTF8.GetBytes(toSign))) == signature && headers.Contains("content-type") && headers.Contains("host");
    }

    [GeneratedRegex(@"^TC3-HMAC-SHA256 Credential=(?<id>[^/]+)/(?<date>\d{4}-\d{2}-\d{2})/(?<service>[^/]+)/tc3_request, SignedHeaders=(?<signed>[a-z0-9;-]+), Signature=(?<sig>[0-9a-f]{64})$")]
    private static partial Regex AuthPattern();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
