namespace SendEngine.Features.WebhookGateway;

/// <summary>
/// The live view's position in <c>webhook_gateway_entries.seq</c>. Seq values are drawn when a row is inserted and become
/// visible when its transaction commits, so with concurrent writers a later seq can be read before an earlier one exists:
/// moving past the earlier one would lose it. The cursor therefore only advances over consecutive seqs and stops at a
/// gap until it is filled or <see cref="WebhookGatewayOptions.StreamGapWait"/> has passed since it was first seen (a
/// rolled-back insert leaves a gap for good). Entries are thus streamed once each, in seq order.
/// </summary>
public sealed class GatewaySeqCursor(long position, TimeSpan gapWait, TimeProvider clock)
{
    private long? _gapAt;
    private long _gapSince;

    public long Position { get; private set; } = position;

    /// <summary>Of the seqs read after <see cref="Position"/> (ascending), how many to stream now; the cursor moves past them.</summary>
    public int Advance(IReadOnlyList<long> seqs)
    {
        var taken = 0;
        foreach (var seq in seqs)
        {
            if (seq != Position + 1)
            {
                if (_gapAt != Position + 1)
                {
                    _gapAt = Position + 1;
                    _gapSince = clock.GetTimestamp();
                }
                if (clock.GetElapsedTime(_gapSince) < gapWait)
                {
                    break;
                }
            }
            _gapAt = null;
            Position = seq;
            taken++;
        }
        return taken;
    }
}
