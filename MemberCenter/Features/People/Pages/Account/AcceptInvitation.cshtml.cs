using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace MemberCenter.Features.People.Pages.Account;

/// <summary>
/// The invitation link's page. Without an account for the invited address it creates one (the link proves the
/// mailbox, so the address counts as confirmed); with one (e.g. a member of another tenant), that account accepts it:
/// with one click when it is signed in here (a passkey-only person has no password to type), else with its password.
/// </summary>
public sealed class AcceptInvitationModel(PeopleService people, UserManager<Person> users, SignInManager<Person> signIn, IOptions<ConsoleOptions> console) : PageModel
{
    [BindProperty(SupportsGet = true)] public string? Token { get; set; }
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public string? Password { get; set; }
    public string? TenantName { get; private set; }
    public string? Role { get; private set; }
    public string? Email { get; private set; }
    public bool HasAccount { get; private set; }
    /// <summary>The Member Center session is the invited account's own: no password is asked.</summary>
    public bool SignedInAsInvited { get; private set; }
    public string? Error { get; private set; }
    public string? Joined { get; private set; }
    public string ConsoleUrl => console.Value.PublicUrl;

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (await LoadAsync(ct) is null)
        {
            Response.StatusCode = StatusCodes.Status404NotFound;
        }
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var invitation = await LoadAsync(ct);
        if (invitation is null)
        {
            Response.StatusCode = StatusCodes.Status404NotFound;
            return Page();
        }
        var person = await users.FindByEmailAsync(invitation.Email);
        if (person is not null)
        {
            // Signed in here with the invited account: the session stands for the password.
            if (!SignedInAsInvited)
            {
                var check = await signIn.CheckPasswordSignInAsync(person, Password ?? "", lockoutOnFailure: true);
                if (!check.Succeeded)
                {
                    Error = check.IsLockedOut ? "Too many failed attempts: this account is locked for 15 minutes." : "The password is wrong.";
                    Response.StatusCode = StatusCodes.Status400BadRequest;
                    return Page();
                }
            }
        }
        else
        {
            if (string.IsNullOrWhiteSpace(Name) || Name.Length > 200)
            {
                Error = "Enter your name (at most 200 characters).";
                Response.StatusCode = StatusCodes.Status400BadRequest;
                return Page();
            }
            (person, var errors) = await people.CreatePersonAsync(invitation.Email, Name, Password ?? "", platformOperator: false, emailConfirmed: true, ct);
            if (person is null)
            {
                Error = string.Join(" ", errors.SelectMany(e => e.Value));
                Response.StatusCode = StatusCodes.Status400BadRequest;
                return Page();
            }
        }
        if (!await people.AcceptAsync(invitation.Id, person, ct))
        {
            TenantName = null;
            Response.StatusCode = StatusCodes.Status404NotFound;
            return Page();
        }
        Joined = TenantName;
        return Page();
    }

    private async Task<Invitation?> LoadAsync(CancellationToken ct)
    {
        var found = await people.FindInvitationAsync(Token, ct);
        if (found is not { } f)
        {
            return null;
        }
        (TenantName, Role, Email) = (f.TenantName, f.Invitation.Role, f.Invitation.Email);
        var existing = await users.FindByEmailAsync(f.Invitation.Email);
        HasAccount = existing is not null;
        if (existing is not null)
        {
            // The session cookie is not the default scheme (the APIs authenticate bearer tokens): read it explicitly.
            var session = await HttpContext.AuthenticateAsync(IdentityConstants.ApplicationScheme);
            SignedInAsInvited = session.Succeeded && users.GetUserId(session.Principal!) == existing.Id.ToString();
        }
        return f.Invitation;
    }
}
