using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.OperationLog;

/// <summary>
/// GET /api/operation-log of either service (each keeps its own append-only log), with the filters of the API; the
/// export links go through the console's relay (/operation-log/export) with the person's token.
/// </summary>
public sealed class IndexModel(MemberCenterApi mc, SendEngineApi se) : ConsolePage
{
    public OperationLogPage Entries { get; private set; } = new([], null);
    public string Service { get; private set; } = "member-center";
    public string? Actor { get; private set; }
    public string? Action { get; private set; }
    public string? From { get; private set; }
    public string? To { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? service, string? actor, string? action, string? from, string? to, string? after, CancellationToken ct)
    {
        if (!Can(Scopes.LogsRead))
        {
            return NotAllowed();
        }
        Service = service == "send-engine" ? "send-engine" : "member-center";
        (Actor, Action, From, To) = (Blank(actor), Blank(action), Blank(from), Blank(to));
        ServiceApi api = Service == "send-engine" ? se : mc;
        await TryAsync(async () => Entries = await api.GetAsync<OperationLogPage>("api/operation-log?" + Query(after, null, 100), ct));
        return Page();
    }

    public string ExportUrl(string format) => "/operation-log/export?service=" + Service + "&" + Query(null, format, null);

    public string PageUrl(string after) => "/operation-log?service=" + Service + "&" + Query(after, null, null);

    /// <summary>The filters as the API takes them; datetime-local values are read as UTC.</summary>
    public string Query(string? after, string? format, int? limit) => string.Join('&', new[]
    {
        limit is null ? null : "limit=" + limit.Value.ToString(CultureInfo.InvariantCulture),
        format is null ? null : "format=" + format,
        Actor is null ? null : "actor=" + ServiceApi.Escape(Actor),
        Action is null ? null : "action=" + ServiceApi.Escape(Action),
        Utc(From) is { } f ? "from=" + ServiceApi.Escape(f) : null,
        Utc(To) is { } t ? "to=" + ServiceApi.Escape(t) : null,
        after is null ? null : "after=" + ServiceApi.Escape(after),
    }.Where(p => p is not null));

    private static string? Utc(string? local) =>
        local is not null && DateTime.TryParse(local, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at)
            ? at.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)
            : null;

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
