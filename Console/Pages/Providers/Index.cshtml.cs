using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.BounceMailboxes;
using Newsletter.Contracts.ProviderCredentials;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Providers;

/// <summary>
/// Send Engine's /api/provider-credentials (the tenant's SMTP relays and Tencent SES accounts) and the live checks of
/// its /api/bounce-mailboxes. Everyone with send.read sees the credentials, the mailboxes and their last check; adding, checking,
/// activating and deleting need the webhooks scope (admins and owners), as Send Engine requires. A check waits for the
/// servers (each step bounded there), so it goes through the client without the standard pipeline's 10 s attempt limit.
/// </summary>
public sealed class IndexModel(SendEngineApi se, SendEngineStream seLong) : ConsolePage
{
    /// <summary>Longer than Send Engine's whole-check limit (ProviderCredentials:VerifyTimeout, 25 s by default).</summary>
    private static readonly TimeSpan CheckLimit = TimeSpan.FromSeconds(40);

    public IReadOnlyList<ProviderCredentialResponse> Credentials { get; private set; } = [];
    public IReadOnlyList<BounceMailboxResponse> Mailboxes { get; private set; } = [];
    /// <summary>The credential or mailbox just checked: its answer is shown open.</summary>
    public string? Checked { get; private set; }

    public bool CanChange => Can(Scopes.Webhooks);

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!Can(Scopes.SendRead) && !Can(Scopes.Webhooks))
        {
            return NotAllowed();
        }
        await LoadAsync(ct);
        return Page();
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        Credentials = (await se.GetAsync<ProviderCredentialList>("api/provider-credentials", ct)).Items;
        // Read-only for viewers too (Send Engine answers no password), like the credentials.
        Mailboxes = (await se.GetAsync<BounceMailboxList>("api/bounce-mailboxes", ct)).Items;
    }

    public Task<IActionResult> OnPostCreateSmtpAsync(string? name, string? host, int? port, string? tls, string? username, string? password,
        bool active, CancellationToken ct) =>
        ActAsync(async () =>
        {
            var created = await se.PostAsync<ProviderCredentialResponse>("api/provider-credentials", new CreateProviderCredentialRequest(
                ProviderKinds.Smtp, name, host, port, tls, Blank(username), Blank(password), Active: active), ct);
            Notice = $"SMTP relay {created.Name} added, not verified yet: check it.";
        }, ct);

    public Task<IActionResult> OnPostCreateTencentAsync(string? name, string? secretId, string? secretKey, string? region, bool active,
        CancellationToken ct) =>
        ActAsync(async () =>
        {
            var created = await se.PostAsync<ProviderCredentialResponse>("api/provider-credentials", new CreateProviderCredentialRequest(
                ProviderKinds.Tencent, name, SecretId: secretId, SecretKey: secretKey, Region: Blank(region), Active: active), ct);
            Notice = $"Tencent SES account {created.Name} added, not verified yet: check it.";
        }, ct);

    public Task<IActionResult> OnPostVerifyAsync(string credentialId, CancellationToken ct) =>
        ActAsync(async () =>
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(CheckLimit);
            var result = await seLong.PostAsync<ProviderCredentialResponse>($"api/provider-credentials/{ServiceApi.Escape(credentialId)}/verify", null, limit.Token);
            Checked = result.CredentialId;
            Notice = $"{result.Name}: {result.Verification.Status}.";
        }, ct);

    public Task<IActionResult> OnPostActivateAsync(string credentialId, bool active, CancellationToken ct) =>
        ActAsync(async () =>
        {
            var result = await se.PatchAsync<ProviderCredentialResponse>($"api/provider-credentials/{ServiceApi.Escape(credentialId)}",
                new UpdateProviderCredentialRequest(Active: active), ct);
            Notice = active
                ? $"{result.Name} is active" + (result.InUse ? ": the tenant's mail goes through it." : "; it is used once it is verified.")
                : $"{result.Name} is inactive: the tenant's mail goes through the platform's provider.";
        }, ct);

    public Task<IActionResult> OnPostDeleteAsync(string credentialId, CancellationToken ct) =>
        ActAsync(async () =>
        {
            await se.DeleteAsync($"api/provider-credentials/{ServiceApi.Escape(credentialId)}", ct);
            Notice = "The credential is deleted.";
        }, ct);

    public Task<IActionResult> OnPostVerifyMailboxAsync(string mailboxId, CancellationToken ct) =>
        ActAsync(async () =>
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(CheckLimit);
            var result = await seLong.PostAsync<BounceMailboxResponse>($"api/bounce-mailboxes/{ServiceApi.Escape(mailboxId)}/verify", null, limit.Token);
            Checked = result.MailboxId;
            Notice = $"Mailbox {result.Username}@{result.Host}: {result.Verification?.Status}.";
        }, ct);

    private async Task<IActionResult> ActAsync(Func<Task> action, CancellationToken ct)
    {
        if (!Can(Scopes.Webhooks))
        {
            return NotAllowed();
        }
        await TryAsync(action);
        await LoadAsync(ct);
        return Page();
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
