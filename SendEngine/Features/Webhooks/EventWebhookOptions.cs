using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace SendEngine.Features.Webhooks;

/// <summary>Webhooks__* keys: tenants' event webhooks (the outbox dispatcher, its retry schedule, the SSRF guard).</summary>
public sealed class EventWebhookOptions
{
    public const string Section = "Webhooks";

    /// <summary>False: this process only writes events (another one delivers them).</summary>
    public bool DispatcherEnabled { get; set; } = true;

    /// <summary>
    /// The waits after each failed attempt (non-2xx, timeout, refused target), comma-separated TimeSpans; once they are
    /// used up the message is failed. The default spans about 28 h. One string rather than an array, so an override
    /// replaces the whole schedule (configuration merges arrays by index).
    /// </summary>
    [Required]
    public string RetrySchedule { get; set; } = "00:00:05, 00:05:00, 00:30:00, 02:00:00, 05:00:00, 10:00:00, 10:00:00";

    /// <summary>An endpoint whose attempts have all failed for this long (no success since) is disabled and reported.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "90.00:00:00")]
    public TimeSpan DisableAfter { get; set; } = TimeSpan.FromDays(5);

    /// <summary>
    /// Failed attempts in a row (over all its messages) after which an endpoint is paused as a whole: its messages stop
    /// being attempted (so a receiver that is down costs one probe per pause, not one attempt per message per retry),
    /// and are delivered once a probe succeeds.
    /// </summary>
    [Range(1, 10_000)]
    public int PauseAfterFailures { get; set; } = 10;

    /// <summary>
    /// The shortest pause; each pause lasts as long as the endpoint has been failing (so probes back off by doubling),
    /// between this and <see cref="MaxPause"/>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00")]
    public TimeSpan MinPause { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest pause between two probes of a failing endpoint.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "1.00:00:00")]
    public TimeSpan MaxPause { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The time one POST may take (connect, send, answer) before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Allows private, loopback, link-local, unique-local and other non-public targets. Never in production: it is for
    /// tests and closed networks whose receivers live next to Send Engine.
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>
    /// With it, secrets are encrypted with AES-256-GCM under a key derived from it (as Member Center's link keys), so
    /// every replica with the password reads them; without it, with ASP.NET Core Data Protection's key ring.
    /// </summary>
    public string? SecretPassword { get; set; }

    /// <summary>How long the previous secret keeps signing after a rotation, unless the request says otherwise.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "7.00:00:00")]
    public TimeSpan DefaultRotationOverlap { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How long a tenant's subscribed event types are cached; another replica's change is seen within it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan SubscriptionCacheTtl { get; set; } = TimeSpan.FromSeconds(10);

    [Range(1, 100)]
    public int MaxEndpointsPerTenant { get; set; } = 20;

    /// <summary>The longest sleep between batches when nothing wakes the dispatcher (retries that came due are found by polling).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 200;

    /// <summary>POSTs in flight at once per dispatcher.</summary>
    [Range(1, 512)]
    public int Concurrency { get; set; } = 32;

    /// <summary><see cref="RetrySchedule"/> parsed (the validator has checked it).</summary>
    public TimeSpan[] Schedule => ParseSchedule(RetrySchedule) ?? [];

    internal static TimeSpan[]? ParseSchedule(string? value)
    {
        var parts = (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var waits = new TimeSpan[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!TimeSpan.TryParse(parts[i], System.Globalization.CultureInfo.InvariantCulture, out waits[i]))
            {
                return null;
            }
        }
        return waits;
    }
}

internal sealed class EventWebhookOptionsValidator : IValidateOptions<EventWebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, EventWebhookOptions o)
    {
        var schedule = EventWebhookOptions.ParseSchedule(o.RetrySchedule);
        if (schedule is null || schedule.Length is 0 or > 20 || schedule.Any(d => d <= TimeSpan.Zero || d > TimeSpan.FromDays(2)))
        {
            return ValidateOptionsResult.Fail("Webhooks:RetrySchedule must be 1 to 20 comma-separated waits (TimeSpan), each above 0 and at most 2 days.");
        }
        if (o.SecretPassword is { Length: > 0 and < 16 })
        {
            return ValidateOptionsResult.Fail("Webhooks:SecretPassword must be at least 16 characters.");
        }
        if (o.MinPause > o.MaxPause)
        {
            return ValidateOptionsResult.Fail("Webhooks:MinPause must not exceed Webhooks:MaxPause.");
        }
        return ValidateOptionsResult.Success;
    }
}
