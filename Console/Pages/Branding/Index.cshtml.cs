using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Branding;

/// <summary>GET and PUT /api/branding of Member Center: how the tenant's reader pages and confirmation mail look.</summary>
public sealed class IndexModel(MemberCenterApi mc) : ConsolePage
{
    public BrandingResponse Branding { get; private set; } = new("", null, null, null, null, null, null, [], null);

    public async Task OnGetAsync(CancellationToken ct) => Branding = await mc.GetAsync<BrandingResponse>("api/branding", ct);

    public async Task<IActionResult> OnPostAsync(string? displayName, string? logoUrl, string? primaryColor, string? accentColor, string? footerText,
        string? postalAddress, CancellationToken ct)
    {
        if (!Can(Scopes.SettingsWrite))
        {
            return NotAllowed();
        }
        // One subject and text per language; both empty: the built-in mail of that language.
        var mail = new Dictionary<string, ConfirmationMailText>();
        foreach (var language in ReaderLanguages.All)
        {
            var subject = Request.Form["subject_" + language].ToString();
            var text = Request.Form["text_" + language].ToString();
            if (subject.Length > 0 || text.Length > 0)
            {
                mail[language] = new ConfirmationMailText(subject, text);
            }
        }
        var request = new BrandingRequest(displayName, logoUrl, primaryColor, accentColor, footerText, postalAddress, mail);
        if (await TryAsync(async () => Branding = await mc.PutAsync<BrandingResponse>("api/branding", request, ct)))
        {
            Notice = "The branding is saved.";
            return Page();
        }
        // Refused: show what was typed, with the API's message above it.
        Branding = new BrandingResponse(TenantId ?? "", displayName, logoUrl, primaryColor, accentColor, footerText, postalAddress, mail, null);
        return Page();
    }
}
