using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using MimeKit;
using SendEngine.Features.Delivery;
using SendEngine.Features.Metrics;

namespace SendEngine.Features.Tencent;

/// <summary>Delivery:DefaultTransport and Delivery:TenantTransports:{tenant_id} (smtp | tencent).</summary>
public sealed class TransportRoutingOptions
{
    public const string Section = "Delivery";

    public string DefaultTransport { get; set; } = "smtp";

    public Dictionary<string, string> TenantTransports { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Refuses unknown transport names, and Tencent without credentials, at start.</summary>
public sealed class TransportRoutingValidator(IEnumerable<IDeliveryTransport> transports, IOptions<TencentSesOptions> tencent)
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
        if (used.Contains(TencentSesDeliveryTransport.TransportName, StringComparer.OrdinalIgnoreCase)
            && (string.IsNullOrEmpty(tencent.Value.SecretId) || string.IsNullOrEmpty(tencent.Value.SecretKey)))
        {
            return ValidateOptionsResult.Fail("A tenant uses the tencent transport but TencentSes:SecretId / TencentSes:SecretKey are not set.");
        }
        return ValidateOptionsResult.Success;
    }
}

/// <summary>The transport of a tenant (its own setting or the platform default), wrapped with send metrics.</summary>
public sealed class DeliveryTransportResolver(IEnumerable<IDeliveryTransport> transports, IOptionsMonitor<TransportRoutingOptions> routing,
    SendEngineMetrics metrics)
{
    private readonly ConcurrentDictionary<string, IDeliveryTransport> _metered = new(StringComparer.OrdinalIgnoreCase);

    public IDeliveryTransport For(Guid tenantId)
    {
        var o = routing.CurrentValue;
        var name = o.TenantTransports.TryGetValue(tenantId.ToString(), out var own) ? own : o.DefaultTransport;
        return _metered.GetOrAdd(name, n => new Metered(
            transports.LastOrDefault(t => string.Equals(t.Name, n, StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException($"No delivery transport named '{n}'."), metrics));
    }

    private sealed class Metered(IDeliveryTransport inner, SendEngineMetrics metrics) : IDeliveryTransport
    {
        public string Name => inner.Name;

        public IDeliverySession OpenSession() => new Session(inner.OpenSession(), inner.Name, metrics);

        private sealed class Session(IDeliverySession inner, string name, SendEngineMetrics metrics) : IDeliverySession
        {
            public async Task<DeliveryResult> SendAsync(MimeMessage message, CancellationToken ct)
            {
                var started = Stopwatch.GetTimestamp();
                var result = await inner.SendAsync(message, ct);
                metrics.Delivery(name, result.Outcome.ToString().ToLowerInvariant(), Stopwatch.GetElapsedTime(started));
                return result;
            }

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
