using System.Diagnostics.Metrics;

namespace SendEngine.Features.Metrics;

/// <summary>
/// Send Engine's own instruments (meter "SendEngine"), exported by OpenTelemetry's Prometheus exporter at /metrics.
/// Prometheus names: dots become underscores, counters end in _total, seconds histograms in _seconds.
/// </summary>
public sealed class SendEngineMetrics
{
    public const string MeterName = "SendEngine";

    private readonly Counter<long> _callbacks;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _signatureFailures;
    private readonly Counter<long> _processed;
    private readonly Histogram<double> _processingLatency;
    private readonly Counter<long> _deliveries;
    private readonly Histogram<double> _sendDuration;
    private readonly Counter<long> _memberCenterReports;
    private readonly Counter<long> _bounceMessages;
    private readonly Counter<long> _bounceFailures;
    private long _backlog;
    private long _pendingReports;
    private double _pendingReportsAge;
    private readonly RecentDeliveries? _recent;

    public SendEngineMetrics(IMeterFactory factory, RecentDeliveries? recent = null)
    {
        _recent = recent;
        var meter = factory.Create(MeterName);
        _callbacks = meter.CreateCounter<long>("sendengine.webhook.callbacks", description: "Webhook events received, by event type and outcome (stored, duplicate).");
        _rejected = meter.CreateCounter<long>("sendengine.webhook.rejected", description: "Webhook requests refused (4xx), by reason.");
        _signatureFailures = meter.CreateCounter<long>("sendengine.webhook.signature_failures", description: "Webhook requests with a missing, stale or wrong signature or token.");
        _processed = meter.CreateCounter<long>("sendengine.email_events.processed", description: "Email events processed, by event type and outcome.");
        _processingLatency = meter.CreateHistogram<double>("sendengine.email_events.processing_latency", unit: "s",
            description: "From the webhook storing an event to the processor applying it.");
        meter.CreateObservableGauge("sendengine.email_events.backlog", () => Volatile.Read(ref _backlog),
            description: "Stored email events not yet processed (sampled by the processor).");
        _deliveries = meter.CreateCounter<long>("sendengine.deliveries", description: "Delivery attempts by transport and result (sent, deferred, rejected, unknown, unavailable, misconfigured).");
        _sendDuration = meter.CreateHistogram<double>("sendengine.delivery.duration", unit: "s", description: "Time to hand one message to the transport.");
        _memberCenterReports = meter.CreateCounter<long>("sendengine.member_center.reports",
            description: "Suppression reports to Member Center, by kind (hard_bounce, complaint, unsubscribe) and outcome (sent, retried, failed).");
        _bounceMessages = meter.CreateCounter<long>("sendengine.bounce_mailbox.messages",
            description: "Bounce mailbox messages by mailbox kind (platform, tenant) and outcome (processed, ignored, unmatched, unparsable, retried).");
        _bounceFailures = meter.CreateCounter<long>("sendengine.bounce_mailbox.connection_failures",
            description: "Failed bounce mailbox connections by mailbox kind and reason (authentication, tls, connection, error).");
        meter.CreateObservableGauge("sendengine.member_center.reports_pending", () => Volatile.Read(ref _pendingReports),
            description: "Member Center reports queued and not yet sent or given up (sampled by the reporter).");
        meter.CreateObservableGauge("sendengine.member_center.reports_pending_age", () => Volatile.Read(ref _pendingReportsAge), unit: "s",
            description: "Age of the oldest Member Center report not yet sent or given up; 0 when none (sampled by the reporter).");
    }

    public static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

    public void Callback(string eventType, string outcome) =>
        _callbacks.Add(1, new KeyValuePair<string, object?>("event_type", eventType), new KeyValuePair<string, object?>("outcome", outcome));

    public void BounceMailboxMessage(string kind, string outcome) =>
        _bounceMessages.Add(1, new KeyValuePair<string, object?>("kind", kind), new KeyValuePair<string, object?>("outcome", outcome));

    public void BounceMailboxFailure(string kind, string reason) =>
        _bounceFailures.Add(1, new KeyValuePair<string, object?>("kind", kind), new KeyValuePair<string, object?>("reason", reason));

    public void Rejected(string reason) => _rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void SignatureFailure(string reason) => _signatureFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void Processed(string eventType, string outcome, TimeSpan latency)
    {
        _processed.Add(1, new KeyValuePair<string, object?>("event_type", eventType), new KeyValuePair<string, object?>("outcome", outcome));
        _processingLatency.Record(Math.Max(0, latency.TotalSeconds), new KeyValuePair<string, object?>("event_type", eventType));
    }

    public void Backlog(long count) => Volatile.Write(ref _backlog, count);

    public void MemberCenterReport(string kind, string outcome) =>
        _memberCenterReports.Add(1, new KeyValuePair<string, object?>("kind", kind), new KeyValuePair<string, object?>("outcome", outcome));

    public void PendingMemberCenterReports(long count, TimeSpan oldestAge = default)
    {
        Volatile.Write(ref _pendingReports, count);
        Volatile.Write(ref _pendingReportsAge, Math.Max(0, oldestAge.TotalSeconds));
    }

    public void Delivery(string transport, string result, TimeSpan duration)
    {
        var t = new KeyValuePair<string, object?>("transport", transport);
        _deliveries.Add(1, t, new KeyValuePair<string, object?>("result", result));
        _recent?.Record(result);
        _sendDuration.Record(duration.TotalSeconds, t, new KeyValuePair<string, object?>("result", result));
    }
}
