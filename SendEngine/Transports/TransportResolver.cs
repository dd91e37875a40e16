using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using SendEngine.Features.Metrics;
using SendEngine.Features.ProviderCredentials;
using SendEngine.Features.Tencent;

namespace SendEngine.Transports;

/// <summary>Delivery:DefaultTransport and Delivery:TenantTransports:{tenant_id} (smtp | tencent).</summary>
public sealed class TransportRoutingOptions
{
    public const string Section = "Delivery";

    public string DefaultTransport { get; set; } = "smtp";

    public Dictionary<string, string> TenantTransports { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Refuses unknown transport names, and Tencent without credentials, at start.</summary>
public sealed class TransportRoutingValidator(IEnumerable<ITransport> transports, IOptions<TencentSesOptions> tencent)
    : IValidateOptions<TransportRoutingOptions>
{
    public ValidateOptionsResult Validate(string? name, TransportRoutingOptions o)
    {
        var known = transports.Select(t => t.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var used = o.TenantTransports.Values.Append(o.DefaultTransport).ToList();
        if (used.FirstOrDefault(u => !known.Contains(u)) is { } unknown)
        {
            return ValidateOptionsResult.Fail($"Delivery: unknown transport '{unknown}' (known: {string.Join(", ", known)}).");
        }
        if (o.TenantTransports.Keys.FirstOrDefault(k => !Guid.TryParse(k, out _)) is { } badKey)
        {
            return ValidateOptionsResult.Fail($"Delivery:TenantTransports: '{badKey}' is not a tenant id.");
        }
        if (used.Contains(TencentSesTransport.TransportName, StringComparer.OrdinalIgnoreCase)
            && (string.IsNullOrEmpty(tencent.Value.SecretId) || string.IsNullOrEmpty(tencent.Value.SecretKey)))
        {
            return ValidateOptionsResult.Fail("A tenant uses the tencent transport but TencentSes:SecretId / TencentSes:SecretKey are not set.");
        }
        return ValidateOptionsResult.Success;
    }
}

/// <summary>
/// The transport of a tenant, wrapped with send metrics: its own verified, active provider credential
/// (<see cref="TenantProviders"/>: its SMTP relay or Tencent account), else its configured transport
/// (Delivery:TenantTransports), else the platform default.
/// </summary>
public sealed class TransportResolver(IEnumerable<ITransport> transports, IOptionsMonitor<TransportRoutingOptions> routing,
    SendEngineMetrics metrics, TenantProviders tenantProviders)
{
    private readonly ConcurrentDictionary<string, ITransport> _metered = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConditionalWeakTable<ITransport, ITransport> _meteredOwn = new();

    public async ValueTask<ITransport> ForAsync(Guid tenantId, CancellationToken ct)
    {
        if (await tenantProviders.TransportForAsync(tenantId, ct) is { } own)
        {
            return _meteredOwn.GetValue(own, t => new Metered(t, metrics));
        }
        return For(tenantId);
    }

    /// <summary>The configured transport (Delivery:TenantTransports or the default), without the tenant's own credentials.</summary>
    public ITransport For(Guid tenantId)
    {
        var o = routing.CurrentValue;
        var name = o.TenantTransports.TryGetValue(tenantId.ToString(), out var own) ? own : o.DefaultTransport;
        return _metered.GetOrAdd(name, n => new Metered(
            transports.LastOrDefault(t => string.Equals(t.Name, n, StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException($"No delivery transport named '{n}'."), metrics));
    }

    /// <summary>The metric label of an outcome (constant strings: no allocation per message).</summary>
    public static string OutcomeName(DeliveryOutcome outcome) => outcome switch
    {
        DeliveryOutcome.Sent => "sent",
        DeliveryOutcome.Deferred => "deferred",
        DeliveryOutcome.Rejected => "rejected",
        DeliveryOutcome.Unknown => "unknown",
        DeliveryOutcome.Unavailable => "unavailable",
        DeliveryOutcome.Misconfigured => "misconfigured",
        _ => outcome.ToString().ToLowerInvariant(),
    };

    private sealed class Metered(ITransport inner, SendEngineMetrics metrics) : ITransport
    {
        public string Name => inner.Name;

        public ITransportSession OpenSession() => new Session(inner.OpenSession(), inner.Name, metrics);

        private sealed class Session(ITransportSession inner, string name, SendEngineMetrics metrics) : ITransportSession
        {
            public async Task<DeliveryResult> SendAsync(OutgoingMessage message, CancellationToken ct)
            {
                var started = Stopwatch.GetTimestamp();
                var result = await inner.SendAsync(message, ct);
                metrics.Delivery(name, OutcomeName(result.Outcome), Stopwatch.GetElapsedTime(started));
                return result;
            }

            public Task WarmUpAsync(CancellationToken ct) => inner.WarmUpAsync(ct);

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
