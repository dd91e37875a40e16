using System.Collections.Concurrent;
using System.Globalization;
using Serilog.Core;
using Serilog.Events;

namespace SendEngine.Tests;

/// <summary>
/// Keeps the last warnings and errors of every host the tests start (Serilog picks up DI-registered sinks), so a
/// test that times out waiting for a job can say what the services complained about: CI shows only the failure
/// message. Process-wide on purpose: the hosts of one test run share it, and it only ever holds diagnostics.
/// </summary>
public sealed class ServiceLogs(string host) : ILogEventSink
{
    // Large enough that a test looking for its own host's line still finds it while the whole suite logs in parallel.
    private const int Capacity = 5000;
    private static readonly ConcurrentQueue<string> Recent = new();

    public void Emit(LogEvent logEvent)
    {
        if (logEvent.Level < LogEventLevel.Warning)
        {
            return;
        }
        Recent.Enqueue(string.Create(CultureInfo.InvariantCulture,
            $"{logEvent.Timestamp:HH:mm:ss.fff} {host} {logEvent.Level}: {logEvent.RenderMessage(CultureInfo.InvariantCulture)} {logEvent.Exception?.GetType().Name} {logEvent.Exception?.Message}"));
        while (Recent.Count > Capacity && Recent.TryDequeue(out _))
        {
        }
    }

    public static string Dump(int last = 40) =>
        Recent.IsEmpty ? "(no warnings or errors logged)" : string.Join(Environment.NewLine, Recent.TakeLast(last));
}
