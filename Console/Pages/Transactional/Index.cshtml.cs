using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Transactional;

/// <summary>GET /api/transactional/requests of Send Engine: by address and one metadata pair, keyset-paged.</summary>
public sealed class IndexModel(SendEngineApi se) : ConsolePage
{
    public EmailTaskPage Tasks { get; private set; } = new([], null);
    public string? Email { get; private set; }
    public string? MetaKey { get; private set; }
    public string? MetaValue { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? email, string? metaKey, string? metaValue, string? after, CancellationToken ct)
    {
        if (!Can(Scopes.SendRead))
        {
            return NotAllowed();
        }
        (Email, MetaKey, MetaValue) = (Blank(email), Blank(metaKey), Blank(metaValue));
        var query = Query(after);
        await TryAsync(async () => Tasks = await se.GetAsync<EmailTaskPage>("api/transactional/requests?" + query, ct));
        return Page();
    }

    public string NextUrl(string after) => "/transactional?" + string.Join('&', new[]
    {
        Email is null ? null : "email=" + ServiceApi.Escape(Email),
        MetaKey is null ? null : "metaKey=" + ServiceApi.Escape(MetaKey),
        MetaValue is null ? null : "metaValue=" + ServiceApi.Escape(MetaValue),
        "after=" + ServiceApi.Escape(after),
    }.Where(p => p is not null));

    private string Query(string? after) => string.Join('&', new[]
    {
        "limit=50",
        Email is null ? null : "email=" + ServiceApi.Escape(Email),
        MetaKey is null ? null : $"metadata.{ServiceApi.Escape(MetaKey)}={ServiceApi.Escape(MetaValue ?? "")}",
        after is null ? null : "after=" + ServiceApi.Escape(after),
    }.Where(p => p is not null));

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
