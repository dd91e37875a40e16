using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Newsletter.ServiceDefaults;

namespace NewsletterConsole.Api;

/// <summary>JSON calls to one service with the person's token; a non-success status throws <see cref="ApiException"/>.</summary>
public abstract class ServiceApi(HttpClient http)
{
    public static readonly JsonSerializerOptions Json = CreateJson();

    protected HttpClient Http => http;

    private static JsonSerializerOptions CreateJson()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        ServiceDefaultsExtensions.ConfigureJson(options);
        return options;
    }

    public async Task<T> GetAsync<T>(string path, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(path, cancellationToken);
        return await ReadAsync<T>(response, cancellationToken);
    }

    /// <summary>GET that answers null for a 404 (an optional route or an object that may be gone).</summary>
    public async Task<T?> FindAsync<T>(string path, CancellationToken cancellationToken) where T : class
    {
        using var response = await http.GetAsync(path, cancellationToken);
        return response.StatusCode == HttpStatusCode.NotFound ? null : await ReadAsync<T>(response, cancellationToken);
    }

    public async Task<T> PostAsync<T>(string path, object? body, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync(path, body ?? new { }, Json, cancellationToken);
        return await ReadAsync<T>(response, cancellationToken);
    }

    public async Task PostAsync(string path, object? body, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync(path, body ?? new { }, Json, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    public async Task<T> PutAsync<T>(string path, object body, CancellationToken cancellationToken)
    {
        using var response = await http.PutAsJsonAsync(path, body, Json, cancellationToken);
        return await ReadAsync<T>(response, cancellationToken);
    }

    public async Task<T> PatchAsync<T>(string path, object body, CancellationToken cancellationToken)
    {
        using var response = await http.PatchAsJsonAsync(path, body, Json, cancellationToken);
        return await ReadAsync<T>(response, cancellationToken);
    }

    public async Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await http.DeleteAsync(path, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>A response to stream to the browser (CSV export, server-sent events); the caller disposes it.</summary>
    public async Task<HttpResponseMessage> SendStreamingAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                throw await ApiException.FromResponseAsync(response, cancellationToken);
            }
        }
        return response;
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await EnsureSuccessAsync(response, cancellationToken);
        return (await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken))!;
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw await ApiException.FromResponseAsync(response, cancellationToken);
        }
    }

    public static string Escape(string value) => Uri.EscapeDataString(value);
}

/// <summary>Member Center's tenant API (lists, subscribers, applications and keys, clients, people, the operation log).</summary>
public sealed class MemberCenterApi(HttpClient http) : ServiceApi(http);

/// <summary>Send Engine's tenant API (send jobs, suppressions, webhook endpoints, transactional mail, status).</summary>
public sealed class SendEngineApi(HttpClient http) : ServiceApi(http);

/// <summary>Send Engine without the resilience pipeline's timeouts, for the live progress stream.</summary>
public sealed class SendEngineStream(HttpClient http) : ServiceApi(http);

/// <summary>Unauthenticated health probes of both services (the Status page).</summary>
public sealed class HealthProbe(HttpClient http)
{
    public async Task<(int? Status, string Body)> ProbeAsync(string baseUrl, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(new Uri(baseUrl.TrimEnd('/') + "/"), "health/ready"), cancellationToken);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
        }
        catch (HttpRequestException e)
        {
            return (null, e.Message);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, "timed out");
        }
    }
}

/// <summary>Member Center with a long timeout, for CSV imports and exports.</summary>
public sealed class MemberCenterStream(HttpClient http) : ServiceApi(http);
