using Microsoft.AspNetCore.Mvc;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.Contracts.Webhooks;
using NewsletterConsole.Api;

namespace NewsletterConsole.Pages.Credentials;

public sealed record ApplicationWithKeys(ApplicationResponse Application, IReadOnlyList<ApiKeyResponse> Keys);

public sealed record ShownSecret(string Label, string Value);

/// <summary>
/// Member Center's /api/applications (and their keys) and Send Engine's /api/webhook-endpoints. A new key's or
/// endpoint's secret is rendered in the POST's own response, once: never stored by the console, never in a redirect.
/// </summary>
public sealed class IndexModel(MemberCenterApi mc, SendEngineApi se) : ConsolePage
{
    public IReadOnlyList<ApplicationWithKeys> Applications { get; private set; } = [];
    public IReadOnlyList<WebhookEndpointResponse> Endpoints { get; private set; } = [];
    public IReadOnlyList<ApiClientResponse> Clients { get; private set; } = [];
    public ShownSecret? NewSecret { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!Can(Scopes.ApiKeysRead) && !Can(Scopes.Webhooks) && !Can(Scopes.Clients))
        {
            return NotAllowed();
        }
        await LoadAsync(ct);
        return Page();
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        if (Can(Scopes.ApiKeysRead))
        {
            var apps = await mc.GetAsync<List<ApplicationResponse>>("api/applications", ct);
            var withKeys = new List<ApplicationWithKeys>();
            foreach (var app in apps)
            {
                withKeys.Add(new(app, await mc.GetAsync<List<ApiKeyResponse>>($"api/applications/{app.ApplicationId}/keys", ct)));
            }
            Applications = withKeys;
        }
        if (Can(Scopes.Clients))
        {
            Clients = await mc.GetAsync<List<ApiClientResponse>>("api/clients", ct);
        }
        if (Can(Scopes.Webhooks))
        {
            Endpoints = (await se.GetAsync<WebhookEndpointList>("api/webhook-endpoints", ct)).Items;
        }
    }

    public Task<IActionResult> OnPostCreateClientAsync(string? usage, string? name, CancellationToken ct) =>
        ActAsync(Scopes.Clients, async () =>
        {
            var client = await mc.PostAsync<ApiClientSecretResponse>("api/clients", new CreateClientRequest(usage, name), ct);
            NewSecret = new ShownSecret($"Secret of client {client.ClientId}", client.ClientSecret);
        }, ct);

    public Task<IActionResult> OnPostRotateClientAsync(string clientId, CancellationToken ct) =>
        ActAsync(Scopes.Clients, async () =>
        {
            var client = await mc.PostAsync<ApiClientSecretResponse>($"api/clients/{ServiceApi.Escape(clientId)}/rotate-secret", null, ct);
            NewSecret = new ShownSecret($"New secret of client {client.ClientId}", client.ClientSecret);
        }, ct);

    public Task<IActionResult> OnPostDisableClientAsync(string clientId, CancellationToken ct) =>
        ActAsync(Scopes.Clients, async () =>
        {
            await mc.PostAsync($"api/clients/{ServiceApi.Escape(clientId)}/disable", null, ct);
            Notice = $"Client {clientId} is disabled.";
        }, ct);

    public Task<IActionResult> OnPostCreateApplicationAsync(string? name, CancellationToken ct) =>
        ActAsync(Scopes.ApiKeysWrite, async () =>
        {
            await mc.PostAsync<ApplicationResponse>("api/applications", new CreateApplicationRequest(name), ct);
            Notice = $"Application {name} created.";
        }, ct);

    public Task<IActionResult> OnPostCreateKeyAsync(string applicationId, string? name, int? expiresInDays, CancellationToken ct) =>
        ActAsync(Scopes.ApiKeysWrite, async () =>
        {
            var key = await mc.PostAsync<ApiKeySecretResponse>($"api/applications/{ServiceApi.Escape(applicationId)}/keys",
                new CreateApiKeyRequest(name, ExpiresInDays: expiresInDays), ct);
            NewSecret = new ShownSecret($"API key {key.Name}", key.ApiKey);
        }, ct);

    public Task<IActionResult> OnPostDeleteKeyAsync(string applicationId, string keyId, CancellationToken ct) =>
        ActAsync(Scopes.ApiKeysWrite, async () =>
        {
            await mc.DeleteAsync($"api/applications/{ServiceApi.Escape(applicationId)}/keys/{ServiceApi.Escape(keyId)}", ct);
            Notice = "The key is deleted.";
        }, ct);

    public Task<IActionResult> OnPostCreateWebhookAsync(string? url, List<string>? eventTypes, string? description, CancellationToken ct) =>
        ActAsync(Scopes.Webhooks, async () =>
        {
            var created = await se.PostAsync<WebhookEndpointSecretResponse>("api/webhook-endpoints",
                new CreateWebhookEndpointRequest(url, eventTypes, string.IsNullOrWhiteSpace(description) ? null : description), ct);
            NewSecret = new ShownSecret($"Signing secret of {created.Endpoint.Url}", created.Secret);
        }, ct);

    public Task<IActionResult> OnPostRotateWebhookAsync(string endpointId, CancellationToken ct) =>
        ActAsync(Scopes.Webhooks, async () =>
        {
            var rotated = await se.PostAsync<WebhookEndpointSecretResponse>(
                $"api/webhook-endpoints/{ServiceApi.Escape(endpointId)}/rotate-secret", new RotateWebhookSecretRequest(null), ct);
            NewSecret = new ShownSecret($"New signing secret of {rotated.Endpoint.Url}", rotated.Secret);
        }, ct);

    public Task<IActionResult> OnPostDeleteWebhookAsync(string endpointId, CancellationToken ct) =>
        ActAsync(Scopes.Webhooks, async () =>
        {
            await se.DeleteAsync($"api/webhook-endpoints/{ServiceApi.Escape(endpointId)}", ct);
            Notice = "The endpoint is deleted.";
        }, ct);

    private async Task<IActionResult> ActAsync(string scope, Func<Task> action, CancellationToken ct)
    {
        if (!Can(scope))
        {
            return NotAllowed();
        }
        await TryAsync(action);
        await LoadAsync(ct);
        return Page();
    }
}
