using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Newsletter.ServiceDefaults;
using Serilog.Core;
using Serilog.Events;

namespace Newsletter.TestSupport.Tests;

/// <summary>
/// Several hosts share a test process (the services' tests run Member Center and one or more Send Engines side by
/// side): each must log through its own logger, and disposing one must not silence the others.
/// </summary>
public sealed class ServiceLoggingTests
{
    [Fact]
    public async Task Each_host_logs_through_its_own_sinks_and_goes_on_logging_after_another_host_is_disposed()
    {
        var (first, firstSink) = Build();
        await using var _ = first;
        var (second, secondSink) = Build();
        var firstLogger = first.Services.GetRequiredService<ILoggerFactory>().CreateLogger("test");
        var secondLogger = second.Services.GetRequiredService<ILoggerFactory>().CreateLogger("test");

        firstLogger.LogWarning("one");
        secondLogger.LogWarning("two");
        Assert.Equal(["one"], firstSink.Messages);
        Assert.Equal(["two"], secondSink.Messages);

        await second.DisposeAsync();
        firstLogger.LogWarning("three");
        Assert.Equal(["one", "three"], firstSink.Messages);
    }

    private static (WebApplication App, CapturingSink Sink) Build()
    {
        var builder = WebApplication.CreateBuilder();
        builder.AddServiceDefaults("test");
        var sink = new CapturingSink();
        builder.Services.AddSingleton<ILogEventSink>(sink);
        return (builder.Build(), sink);
    }

    private sealed class CapturingSink : ILogEventSink
    {
        private readonly List<string> _messages = [];

        public IReadOnlyList<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public void Emit(LogEvent logEvent)
        {
            lock (_messages)
            {
                _messages.Add(logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }
}
