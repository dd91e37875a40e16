using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using SendEngine.Features.WebhookGateway;

namespace SendEngine.Tests;

/// <summary>
/// The live view's per-watcher writing (<see cref="GatewayFeed.Watcher"/>), driven the way the feed's loop drives it, into
/// a real pipe whose reader plays a slow client: what a watcher that falls behind gets, the heartbeat, and that nothing
/// is written once its request closed. WebhookGatewayTests streams the same over HTTP with many watchers in several phases.
/// </summary>
public sealed class WebhookGatewayWatcherTests
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);
    private static readonly DateTimeOffset T0 = new(2026, 12, 2, 8, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_watcher_behind_a_full_buffer_is_told_how_many_entries_it_lost_then_gets_the_rest_in_order_and_nothing_after_it_closed()
    {
        // The client reads nothing until told: a flush of more than 64 unread bytes stays pending (Kestrel's limit is 64 KB).
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 64, resumeWriterThreshold: 32, writerScheduler: PipeScheduler.Inline,
            readerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        using var watcher = new GatewayFeed.Watcher(null, buffer: 4);
        watcher.Attach(pipe.Writer, T0);

        watcher.Post(Chunk(1));
        watcher.Serve(T0, Heartbeat);
        Assert.Equal(Frames(1), await ReadAsync(pipe.Reader));

        // The client stops reading: chunk 2 fills the pipe (its flush stays pending), 3..12 pile up behind a buffer of 4:
        // the oldest six (3..8, two entries each) are dropped whole, 9..12 kept.
        watcher.Post(Chunk(2));
        watcher.Serve(T0, Heartbeat);
        for (var i = 3; i <= 12; i++)
        {
            watcher.Post(Chunk(i));
            watcher.Serve(T0, Heartbeat);
        }
        Assert.False(watcher.Done.IsCompleted);

        // The client catches up: the pending flush completes, and the next phase writes the notice, then the kept chunks.
        Assert.Equal(Frames(2), await ReadAsync(pipe.Reader));
        watcher.Serve(T0, Heartbeat);
        var expected = "event: lost\ndata: {\"lost_entries\":12}\n\n" + Frames(9, 10, 11, 12);
        Assert.Equal(expected, await ReadAsync(pipe.Reader));
        Assert.Equal(12, watcher.LostEntries);

        // Nothing queued: no write until the heartbeat is due, then a comment.
        watcher.Serve(T0 + Heartbeat - TimeSpan.FromSeconds(1), Heartbeat);
        Assert.False(pipe.Reader.TryRead(out _));
        watcher.Serve(T0 + Heartbeat, Heartbeat);
        Assert.Equal(": heartbeat\n\n", await ReadAsync(pipe.Reader));

        // The request ended: the feed never touches its response again.
        await watcher.CloseAsync();
        Assert.True(watcher.Done.IsCompleted);
        watcher.Post(Chunk(13));
        watcher.Serve(T0 + Heartbeat * 3, Heartbeat);
        Assert.False(pipe.Reader.TryRead(out _));
    }

    [Fact]
    public async Task A_watcher_whose_client_left_stops_being_written_and_its_request_is_released()
    {
        var pipe = new Pipe(new PipeOptions(writerScheduler: PipeScheduler.Inline, readerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        using var watcher = new GatewayFeed.Watcher(null, buffer: 4);
        watcher.Attach(pipe.Writer, T0);
        await pipe.Reader.CompleteAsync();
        watcher.Post(Chunk(1));
        watcher.Serve(T0, Heartbeat);
        Assert.True(watcher.Done.IsCompleted);
        await watcher.CloseAsync();
    }

    private static GatewayFrames Chunk(int n) => new(Encoding.UTF8.GetBytes(Frames(n)), 2);

    // Two entries per chunk: "n.a" and "n.b".
    private static string Frames(params int[] chunks) =>
        string.Concat(chunks.Select(n => $"event: entry\ndata: {{\"n\":\"{n}.a\"}}\n\nevent: entry\ndata: {{\"n\":\"{n}.b\"}}\n\n"));

    private static async Task<string> ReadAsync(PipeReader reader)
    {
        var result = await reader.ReadAsync();
        var text = Encoding.UTF8.GetString(result.Buffer.ToArray());
        reader.AdvanceTo(result.Buffer.End);
        return text;
    }
}
