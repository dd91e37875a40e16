using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace MemberCenter.Features.People.Pages.Account;

[Authorize(AuthenticationSchemes = "Identity.Application")]
public sealed class IndexModel(UserManager<Person> users) : PageModel
{
    public string? Email { get; private set; }

    public async Task OnGetAsync() => Email = (await users.GetUserAsync(User))?.Email;
}
