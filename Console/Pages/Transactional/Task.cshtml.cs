using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.Transactional;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Transactional;

/// <summary>GET /api/transactional/tasks/{task_id} of Send Engine, with its events.</summary>
public sealed class TaskModel(SendEngineApi se) : ConsolePage
{
    public EmailTaskResponse Task { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string taskId, CancellationToken ct)
    {
        if (!Can(Scopes.SendRead))
        {
            return NotAllowed();
        }
        Task = await se.GetAsync<EmailTaskResponse>("api/transactional/tasks/" + ServiceApi.Escape(taskId), ct);
        return Page();
    }
}
