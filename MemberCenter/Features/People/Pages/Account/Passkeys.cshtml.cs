using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>
/// A signed-in person's passkeys (.NET Identity's WebAuthn support): register one (the page script asks the browser
/// with the creation options, Identity checks the attestation against the challenge kept in its two-factor cookie),
/// list and remove them.
/// </summary>
[Authorize(AuthenticationSchemes = "Identity.Application")]
public sealed class PasskeysModel(UserManager<Person> users, SignInManager<Person> signIn, IOptions<PeopleOptions> options) : PageModel
{
    public sealed record PasskeyRow(string Id, string Name, DateTimeOffset CreatedAt, bool BackedUp);

    [BindProperty] public string? CredentialJson { get; set; }
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public string? PasskeyId { get; set; }
    [TempData] public string? Message { get; set; }
    public string? Error { get; private set; }
    public string CreationOptions { get; private set; } = "";
    public List<PasskeyRow> Passkeys { get; private set; } = [];
    public bool CanAdd => Passkeys.Count < options.Value.MaxPasskeys;

    public async Task<IActionResult> OnGetAsync()
    {
        if (await LoadAsync() is null)
        {
            return Challenge();
        }
        await MakeOptionsAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostAddAsync()
    {
        var person = await LoadAsync();
        if (person is null)
        {
            return Challenge();
        }
        if (!CanAdd)
        {
            return await Fail($"You have {Passkeys.Count} passkeys, the most allowed: remove one first.");
        }
        if (string.IsNullOrEmpty(CredentialJson) || CredentialJson.Length > 64 * 1024)
        {
            return await Fail("No passkey was received.");
        }
        var attestation = await signIn.PerformPasskeyAttestationAsync(CredentialJson);
        // The options (and their challenge) were made for this person; a state made for someone else is refused.
        if (!attestation.Succeeded || attestation.UserEntity.Id != person.Id.ToString())
        {
            return await Fail("The passkey could not be registered: " + (attestation.Failure?.Message ?? "it was made for another account."));
        }
        var passkey = attestation.Passkey;
        passkey.Name = string.IsNullOrWhiteSpace(Name) ? "Passkey" : Name.Trim()[..Math.Min(Name.Trim().Length, 100)];
        var result = await users.AddOrUpdatePasskeyAsync(person, passkey);
        if (!result.Succeeded)
        {
            return await Fail(string.Join(" ", result.Errors.Select(e => e.Description)));
        }
        Message = $"Passkey \"{passkey.Name}\" added: you can sign in with it.";
        return RedirectToPage();
    }

    public async Task<IActionResult> OnPostRemoveAsync()
    {
        var person = await LoadAsync();
        if (person is null)
        {
            return Challenge();
        }
        byte[] id;
        try
        {
            id = WebEncoders.Base64UrlDecode(PasskeyId ?? "");
        }
        catch (FormatException)
        {
            return await Fail("Unknown passkey.");
        }
        // Only this person's passkeys: Identity removes the credential where it belongs to this user.
        if (Passkeys.All(p => p.Id != PasskeyId))
        {
            return await Fail("Unknown passkey.");
        }
        var result = await users.RemovePasskeyAsync(person, id);
        if (!result.Succeeded)
        {
            return await Fail(string.Join(" ", result.Errors.Select(e => e.Description)));
        }
        Message = "Passkey removed.";
        return RedirectToPage();
    }

    private async Task<IActionResult> Fail(string error)
    {
        await MakeOptionsAsync();
        Error = error;
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }

    private Person? _person;

    /// <summary>The person and their passkeys.</summary>
    private async Task<Person?> LoadAsync()
    {
        var person = _person = await users.GetUserAsync(User);
        if (person is null)
        {
            return null;
        }
        Passkeys = (await users.GetPasskeysAsync(person))
            .OrderBy(p => p.CreatedAt)
            .Select(p => new PasskeyRow(WebEncoders.Base64UrlEncode(p.CredentialId), p.Name ?? "Passkey", p.CreatedAt, p.IsBackedUp))
            .ToList();
        return person;
    }

    /// <summary>
    /// Fresh creation options (a new challenge, kept by Identity in its two-factor cookie) for the add button; made after
    /// an attestation was checked, never before (they replace the state the attestation is checked against).
    /// </summary>
    private async Task MakeOptionsAsync()
    {
        if (_person is { } person && CanAdd)
        {
            CreationOptions = await signIn.MakePasskeyCreationOptionsAsync(new PasskeyUserEntity
            {
                Id = person.Id.ToString(),
                Name = person.Email ?? person.Id.ToString(),
                DisplayName = person.DisplayName ?? person.Email ?? "",
            });
        }
    }
}
