using System.Globalization;
using Newsletter.Contracts;

namespace NewsletterConsole.Pages.SendJobs;

public sealed record ChartLine(string Name, string Colour, string Points, int Total);

/// <summary>
/// A job's statistics as a server-rendered SVG line chart: one polyline per series over the buckets, scaled to the
/// largest value. No script and no inline style, so the page's CSP holds; the same numbers are in a table beside it.
/// </summary>
public sealed class StatsChart
{
    public const int Width = 640;
    public const int Height = 220;
    public const int Left = 40;
    public const int Bottom = 24;
    public const int Top = 10;

    public IReadOnlyList<ChartLine> Lines { get; }
    public int Max { get; }
    public IReadOnlyList<SendJobStatsBucket> Buckets { get; }
    public string FirstLabel { get; } = "";
    public string LastLabel { get; } = "";

    public StatsChart(SendJobStatsResponse stats)
    {
        Buckets = stats.Series;
        var series = new (string Name, string Colour, Func<SendJobStatsBucket, int> Value)[]
        {
            ("Sent", "#0b5cad", b => b.Sent),
            ("Delivered", "#1a7f37", b => b.Delivered),
            ("Bounced", "#a4161a", b => b.BouncedHard + b.BouncedSoft),
            ("Opened", "#8250df", b => b.Opened),
            ("Clicked", "#9a6700", b => b.Clicked),
        };
        Max = Math.Max(1, Buckets.Count == 0 ? 1 : series.Max(s => Buckets.Max(s.Value)));
        Lines = series.Select(s => new ChartLine(s.Name, s.Colour, Points(s.Value), Buckets.Sum(s.Value))).ToList();
        if (Buckets.Count > 0)
        {
            var format = stats.Bucket == "hour" ? "MM-dd HH:00" : "HH:mm";
            FirstLabel = Buckets[0].Start.UtcDateTime.ToString(format, CultureInfo.InvariantCulture);
            LastLabel = Buckets[^1].Start.UtcDateTime.ToString(format, CultureInfo.InvariantCulture);
        }
    }

    private string Points(Func<SendJobStatsBucket, int> value)
    {
        var plotWidth = Width - Left - 10;
        var plotHeight = Height - Top - Bottom;
        var step = Buckets.Count > 1 ? (double)plotWidth / (Buckets.Count - 1) : 0;
        return string.Join(' ', Buckets.Select((b, i) => string.Create(CultureInfo.InvariantCulture,
            $"{Left + (Buckets.Count > 1 ? i * step : plotWidth / 2.0):0.#},{Top + plotHeight - (double)value(b) / Max * plotHeight:0.#}")));
    }
}
