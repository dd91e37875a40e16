using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Mail;
using Newsletter.TestSupport;
using SendEngine.Composition;
using SendEngine.Features.Tencent;
using SendEngine.Transports;

namespace SendEngine.Tests;

/// <summary>
/// The Tencent SES transport alone against <see cref="TencentSesStandIn"/>: every answer (and no answer) maps to the
/// outcome docs/send-engine.md "Transports" gives it. No resilience handler here, so each script entry is one call.
/// </summary>
public sealed class TencentSesTransportTests
{
    private const string SecretKey = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";

    private static (ITransport Transport, ServiceProvider Services) Transport(string endpoint, string? secretKey = SecretKey, string? secretId = "AKIDtest")
    {
        var services = new ServiceCollection();
        // Short enough for the test, long enough for a loaded machine to get the request to the stand-in.
        services.AddHttpClient(TencentSesTransport.HttpClientName, http => http.Timeout = TimeSpan.FromSeconds(3));
        services.AddOptions<TencentSesOptions>().Configure(o =>
        {
            o.Endpoint = endpoint;
            o.SecretId = secretId;
            o.SecretKey = secretKey;
        });
        var provider = services.BuildServiceProvider();
        return (new TencentSesTransport(provider.GetRequiredService<IHttpClientFactory>(), provider.GetRequiredService<IOptionsMonitor<TencentSesOptions>>(),
            TimeProvider.System, NullLogger<TencentSesTransport>.Instance), provider);
    }

    private static OutgoingMessage Message(string to) =>
        new MessageComposer(new SmtpOptions { FromAddress = "news@example.test", FromName = "News" }, null, "Hello", "<p>Hi</p>", "Hi")
            .Compose(new MergeData(to, "http://mc.test/u?token=t", new Dictionary<string, JsonElement>()));

    [Fact]
    public async Task Every_answer_maps_to_its_outcome()
    {
        var cases = new (string Script, DeliveryOutcome Expected)[]
        {
            ("FailedOperation.FrequencyLimit", DeliveryOutcome.Deferred),
            ("FailedOperation.EmailAddrInBlacklist", DeliveryOutcome.Rejected),
            ("InvalidParameterValue.InvalidToEmailAddress", DeliveryOutcome.Rejected),
            ("HTTP 400", DeliveryOutcome.Rejected),
            ("AuthFailure.SecretIdNotFound", DeliveryOutcome.Misconfigured),
            ("UnauthorizedOperation", DeliveryOutcome.Misconfigured),
            ("FailedOperation.NotAuthenticatedSender", DeliveryOutcome.Misconfigured),
            ("FailedOperation.InsufficientQuota", DeliveryOutcome.Misconfigured),
            ("HTTP 403", DeliveryOutcome.Misconfigured),
            ("InternalError", DeliveryOutcome.Unavailable),
            ("RequestLimitExceeded", DeliveryOutcome.Unavailable),
            ("FailedOperation.ExceedSendLimit", DeliveryOutcome.Unavailable),
            ("HTTP 503", DeliveryOutcome.Unavailable),
            ("HTTP 502", DeliveryOutcome.Unavailable),
            ("RAW <html>proxy error</html>", DeliveryOutcome.Unavailable),
            ("RAW [1,2]", DeliveryOutcome.Unknown),
            ("RAW {\"Response\":{\"RequestId\":\"r-1\"}}", DeliveryOutcome.Unknown),
            ("HANG", DeliveryOutcome.Unknown),
        };
        await using var ses = new TencentSesStandIn("AKIDtest", SecretKey);
        var (transport, services) = Transport(ses.Url);
        await using var _ = services;
        await using var session = transport.OpenSession();

        var seen = new List<string>();
        for (var i = 0; i < cases.Length; i++)
        {
            var to = $"r{i}@example.test";
            ses.Script[to] = new ConcurrentQueue<string>([cases[i].Script]);
            var result = await session.SendAsync(Message(to), TestContext.Current.CancellationToken);
            seen.Add($"{cases[i].Script} -> {result.Outcome} ({result.Detail})");
            if (result.Outcome != cases[i].Expected)
            {
                Assert.Fail($"{cases[i].Script}: expected {cases[i].Expected}, got {result.Outcome} ({result.Detail})\n{string.Join("\n", seen)}");
            }
            if (result.Outcome == DeliveryOutcome.Unknown)
            {
                Assert.StartsWith("outcome unknown: ", result.Detail);
                Assert.EndsWith("; not retried to avoid a duplicate", result.Detail);
            }
        }
        // Each scripted answer was one call: the transport itself never retries.
        Assert.Equal(cases.Length, ses.Calls.Count);

        var sent = await session.SendAsync(Message("ok@example.test"), TestContext.Current.CancellationToken);
        Assert.Equal(DeliveryOutcome.Sent, sent.Outcome);
        Assert.Equal(ses.Calls.Last().Answer, sent.ProviderMessageId);
    }

    [Fact]
    public async Task A_wrong_secret_and_missing_credentials_are_misconfigured_and_an_unreachable_endpoint_unavailable()
    {
        await using var ses = new TencentSesStandIn("AKIDtest", SecretKey);
        var (wrong, wrongServices) = Transport(ses.Url, secretKey: "not-the-secret");
        var (none, noneServices) = Transport(ses.Url, secretId: null);
        var (away, awayServices) = Transport($"http://127.0.0.1:{FreePort.Get()}");
        await using var s1 = wrongServices;
        await using var s2 = noneServices;
        await using var s3 = awayServices;
        await using var wrongSession = wrong.OpenSession();
        await using var noneSession = none.OpenSession();
        await using var awaySession = away.OpenSession();

        var signature = await wrongSession.SendAsync(Message("a@example.test"), TestContext.Current.CancellationToken);
        var unconfigured = await noneSession.SendAsync(Message("a@example.test"), TestContext.Current.CancellationToken);
        var unreachable = await awaySession.SendAsync(Message("a@example.test"), TestContext.Current.CancellationToken);

        Assert.Equal(DeliveryOutcome.Misconfigured, signature.Outcome);
        Assert.Contains("AuthFailure.SignatureFailure", signature.Detail);
        Assert.Equal(DeliveryOutcome.Misconfigured, unconfigured.Outcome);
        Assert.Equal(DeliveryOutcome.Unavailable, unreachable.Outcome);
        Assert.StartsWith("Tencent SES unreachable", unreachable.Detail);
    }
}
