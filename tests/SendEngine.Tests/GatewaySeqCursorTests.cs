using SendEngine.Features.WebhookGateway;

namespace SendEngine.Tests;

/// <summary>
/// The live view's cursor over webhook_gateway_entries.seq: two writers insert at once, so a later seq can be committed
/// (and read) before an earlier one. WebhookGatewayTests streams a burst through both writers over HTTP.
/// </summary>
public sealed class GatewaySeqCursorTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    [Fact]
    public void Consecutive_seqs_are_all_taken()
    {
        var cursor = new GatewaySeqCursor(10, Wait, new SteppingClock());
        Assert.Equal(3, cursor.Advance([11, 12, 13]));
        Assert.Equal(13, cursor.Position);
        Assert.Equal(0, cursor.Advance([]));
        Assert.Equal(13, cursor.Position);
    }

    [Fact]
    public void A_gap_holds_the_cursor_until_it_is_filled_so_the_earlier_entry_is_streamed_first_and_none_twice()
    {
        var clock = new SteppingClock();
        var cursor = new GatewaySeqCursor(10, Wait, clock);
        // 12 and 13 committed, 11 still in flight: only what precedes the gap (nothing) is taken.
        Assert.Equal(0, cursor.Advance([12, 13]));
        Assert.Equal(10, cursor.Position);
        clock.Advance(TimeSpan.FromSeconds(1));
        // 11 committed: read again from the same position, everything is taken in order.
        Assert.Equal(3, cursor.Advance([11, 12, 13]));
        Assert.Equal(13, cursor.Position);
    }

    [Fact]
    public void A_gap_older_than_the_wait_is_a_rolled_back_insert_and_is_skipped()
    {
        var clock = new SteppingClock();
        var cursor = new GatewaySeqCursor(10, Wait, clock);
        Assert.Equal(1, cursor.Advance([11, 13, 14]));
        clock.Advance(Wait - TimeSpan.FromMilliseconds(1));
        Assert.Equal(0, cursor.Advance([13, 14]));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        // Given up on 12; a new gap (15) starts its own wait.
        Assert.Equal(2, cursor.Advance([13, 14, 16]));
        Assert.Equal(14, cursor.Position);
        clock.Advance(Wait);
        Assert.Equal(1, cursor.Advance([16]));
        Assert.Equal(16, cursor.Position);
    }
}
