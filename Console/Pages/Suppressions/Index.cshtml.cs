using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Suppressions;

/// <summary>
/// GET (search by address prefix, reason and source; keyset pages), POST /api/suppressions and
/// DELETE /api/suppressions/{email} of Send Engine.
/// </summary>
public sealed class IndexModel(SendEngineApi se) : ConsolePage
{
    public static readonly string[] Reasons = ["manual", "complaint", "hard_bounce", "unsubscribe", "erased"];
    public static readonly string[] Sources = ["api", "esp", "delivery", "erasure"];

    public SuppressionPage Suppressed { get; private set; } = new([], null);
    public string? Email { get; private set; }
    public string? Reason { get; private set; }
    public string? Source { get; private set; }
    public bool Filtered => Email is not null || Reason is not null || Source is not null;

    public async Task OnGetAsync(string? email, string? reason, string? source, string? after, CancellationToken ct)
    {
        (Email, Reason, Source) = (Blank(email), Blank(reason), Blank(source));
        await TryAsync(async () => Suppressed = await se.GetAsync<SuppressionPage>("api/suppressions?" + Query(after, 100), ct));
    }

    public async Task<IActionResult> OnPostAddAsync(string? email, string? reason, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.PostAsync("api/suppressions", new AddSuppressionRequest(TenantId, email, reason), ct)))
        {
            Notice = $"{email} is suppressed.";
        }
        await ReloadAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostRemoveAsync(string? email, CancellationToken ct)
    {
        if (!Can(Scopes.SendWrite))
        {
            return NotAllowed();
        }
        if (await TryAsync(() => se.DeleteAsync("api/suppressions/" + ServiceApi.Escape(email ?? ""), ct)))
        {
            Notice = $"{email} is no longer suppressed.";
        }
        await ReloadAsync(ct);
        return Page();
    }

    /// <summary>After a change, the first page of the search the person was looking at (kept in the form's hidden fields).</summary>
    private Task ReloadAsync(CancellationToken ct) =>
        OnGetAsync(Request.Form["q_email"], Request.Form["q_reason"], Request.Form["q_source"], null, ct);

    public string NextUrl(string after) => "/suppressions?" + Query(after, null);

    private string Query(string? after, int? limit) => string.Join('&', new[]
    {
        limit is null ? null : "limit=" + limit,
        Email is null ? null : "email=" + ServiceApi.Escape(Email),
        Reason is null ? null : "reason=" + ServiceApi.Escape(Reason),
        Source is null ? null : "source=" + ServiceApi.Escape(Source),
        after is null ? null : "after=" + ServiceApi.Escape(after),
    }.Where(p => p is not null));

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
