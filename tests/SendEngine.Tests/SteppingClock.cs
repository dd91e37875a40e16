namespace SendEngine.Tests;

/// <summary>Elapsed time that moves only when told to (the wall clock is the real one).</summary>
public sealed class SteppingClock : TimeProvider
{
    private long _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _ticks;

    public void Advance(TimeSpan by) => _ticks += by.Ticks;
}
