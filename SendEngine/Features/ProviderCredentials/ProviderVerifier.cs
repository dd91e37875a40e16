using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.ProviderCredentials;
using SendEngine.Features.Tencent;
using SendEngine.Transports;

namespace SendEngine.Features.ProviderCredentials;

/// <param name="Detail">The failure in one line (when it failed), then what the server said; never a secret.</param>
public sealed record CheckResult(bool Ok, string Detail)
{
    public string Status => Ok ? VerificationStatuses.Verified : VerificationStatuses.Failed;
}

/// <summary>
/// Live checks of a credential against its server, each step bounded: the TCP connect by
/// <see cref="ProviderCredentialOptions.ConnectTimeout"/>, then each step (SMTP: greeting with EHLO and STARTTLS or
/// TLS, then AUTH; IMAP: greeting with TLS, LOGIN, SELECT; Tencent: the signed ListEmailIdentities call) by
/// <see cref="ProviderCredentialOptions.CommandTimeout"/>, the whole check by
/// <see cref="ProviderCredentialOptions.VerifyTimeout"/>. Failures come back as a sentence (refused, unresolvable,
/// certificate refused and why, the server's 535 / NO reply, no answer within…), never as an exception.
/// </summary>
public sealed class ProviderVerifier(ProviderNetwork network, IOptions<ProviderCredentialOptions> options, IHttpClientFactory httpFactory,
    TimeProvider clock)
{
    public const string HttpClientName = "provider-verify";
    public const string TencentAction = "ListEmailIdentities";

    private ProviderCredentialOptions O => options.Value;

    public static SecureSocketOptions SmtpTls(string mode) => mode switch
    {
        SmtpTlsModes.Tls => SecureSocketOptions.SslOnConnect,
        SmtpTlsModes.StartTls => SecureSocketOptions.StartTls,
        _ => SecureSocketOptions.None,
    };

    public async Task<CheckResult> SmtpAsync(string host, int port, string tls, string? username, string? password, CancellationToken ct)
    {
        var replies = new ReplyLog();
        string? certificateProblem = null;
        using var client = new SmtpClient(replies)
        {
            Timeout = (int)O.CommandTimeout.TotalMilliseconds,
            ServerCertificateValidationCallback = network.CertificateValidation(p => certificateProblem = p),
        };
        var step = "connect";
        return await RunAsync(async total =>
        {
            var socket = await network.ConnectAsync(host, port, network.AllowPrivateNetworks, total);
            step = "greeting, EHLO" + (tls == SmtpTlsModes.None ? "" : " and TLS");
            await WithinAsync(total, t => client.ConnectAsync(socket, host, port, SmtpTls(tls), t));
            var lines = new List<string> { $"connected to {host}:{port}" + (client.IsSecure ? $" over {client.SslProtocol}" : " without TLS") };
            if (!string.IsNullOrEmpty(username))
            {
                step = "AUTH";
                await WithinAsync(total, t => client.AuthenticateAsync(username, password ?? "", t));
                lines.Add($"AUTH accepted for {username}");
            }
            step = "QUIT";
            await QuietlyAsync(() => WithinAsync(total, t => client.DisconnectAsync(true, t)));
            return new CheckResult(true, string.Join("\n", lines) + "\n" + replies);
        }, ex => ex switch
        {
            AuthenticationException { InnerException: SmtpCommandException reply } => $"AUTH refused: {(int)reply.StatusCode} {reply.Message}",
            AuthenticationException a => "AUTH refused: " + a.Message,
            SmtpCommandException reply => $"{step}: the server answered {(int)reply.StatusCode} {reply.Message}",
            _ => null,
        }, () => step, () => certificateProblem, replies, ct);
    }

    /// <param name="allowPrivateNetworks">The mailbox's own rule (BounceMailboxes:AllowPrivateNetworks).</param>
    public async Task<CheckResult> ImapAsync(string host, int port, SecureSocketOptions tls, string username, string password, string folder,
        bool allowInvalidCertificate, bool allowPrivateNetworks, CancellationToken ct)
    {
        var replies = new ReplyLog();
        string? certificateProblem = null;
        using var client = new ImapClient(replies)
        {
            Timeout = (int)O.CommandTimeout.TotalMilliseconds,
            ServerCertificateValidationCallback = allowInvalidCertificate ? (_, _, _, _) => true : network.CertificateValidation(p => certificateProblem = p),
        };
        var step = "connect";
        return await RunAsync(async total =>
        {
            var socket = await network.ConnectAsync(host, port, allowPrivateNetworks, total);
            step = "greeting" + (tls == SecureSocketOptions.None ? "" : " and TLS");
            await WithinAsync(total, t => client.ConnectAsync(socket, host, port, tls, t));
            step = "LOGIN";
            // One attempt: MailKit would otherwise try every mechanism in turn, and a server that delays each refusal
            // (Dovecot: 2 s) would turn a wrong password into a timeout.
            await WithinAsync(total, t => client.AuthenticationMechanisms.Contains("PLAIN")
                ? client.AuthenticateAsync(new SaslMechanismPlain(username, password), t)
                : client.AuthenticateAsync(username, password, t));
            step = "SELECT " + folder;
            var opened = await WithinAsync(total, async t =>
            {
                var f = await client.GetFolderAsync(folder, t);
                await f.OpenAsync(FolderAccess.ReadWrite, t);
                return f;
            });
            var summary = $"connected to {host}:{port}" + (client.IsSecure ? $" over {client.SslProtocol}" : " without TLS")
                + $"\nLOGIN accepted for {username}\nSELECT {folder}: {opened.Count} messages";
            step = "LOGOUT";
            await QuietlyAsync(() => WithinAsync(total, t => client.DisconnectAsync(true, t)));
            return new CheckResult(true, summary + "\n" + replies);
        }, ex => ex switch
        {
            AuthenticationException a => "LOGIN refused: " + a.Message,
            FolderNotFoundException => $"the folder {folder} does not exist",
            ImapCommandException reply => $"{step}: the server answered {reply.Response} {reply.ResponseText}",
            _ => null,
        }, () => step, () => certificateProblem, replies, ct);
    }

    /// <summary>A signed, read-only ListEmailIdentities call (TC3-HMAC-SHA256, API 2020-10-02) against the account's endpoint.</summary>
    public async Task<CheckResult> TencentAsync(string secretId, string secretKey, string region, string endpoint, CancellationToken ct)
    {
        var step = "ListEmailIdentities";
        return await RunAsync(async total =>
        {
            const string payload = "{}";
            var uri = new Uri(endpoint);
            var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
            var signature = Tc3Signer.Sign(secretId, secretKey, "ses", uri.Authority, timestamp, payload);
            using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(payload)) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", Tc3Signer.JsonContentType);
            request.Headers.TryAddWithoutValidation("Authorization", signature.Authorization);
            request.Headers.Add("X-TC-Action", TencentAction);
            request.Headers.Add("X-TC-Version", TencentSesTransport.Version);
            request.Headers.Add("X-TC-Timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add("X-TC-Region", region);
            using var http = httpFactory.CreateClient(HttpClientName);
            var (status, text) = await WithinAsync(total, async t =>
            {
                using var response = await http.SendAsync(request, t);
                return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(t));
            });
            var snippet = text.Length > 500 ? text[..500] : text;
            if (status is < 200 or > 299)
            {
                return new CheckResult(false, $"Tencent SES answered HTTP {status}\n{snippet}");
            }
            try
            {
                using var doc = JsonDocument.Parse(text);
                var response = doc.RootElement.GetProperty("Response");
                var requestId = response.TryGetProperty("RequestId", out var rid) ? rid.GetString() : null;
                if (response.TryGetProperty("Error", out var error))
                {
                    return new CheckResult(false, $"Tencent SES refused the call: {error.GetProperty("Code").GetString()}: {error.GetProperty("Message").GetString()} (RequestId {requestId})");
                }
                var identities = response.TryGetProperty("EmailIdentities", out var list) && list.ValueKind == JsonValueKind.Array
                    ? list.EnumerateArray().Select(i => i.TryGetProperty("IdentityName", out var n) ? n.GetString() : null).OfType<string>().ToList()
                    : [];
                return new CheckResult(true, $"{TencentAction} accepted the signature (region {region}, RequestId {requestId}): "
                    + $"{identities.Count} sender identities{(identities.Count > 0 ? ": " + string.Join(", ", identities.Take(20)) : "")}");
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                return new CheckResult(false, "Tencent SES answered something that is not its API's JSON\n" + snippet);
            }
        }, ex => ex is HttpRequestException h ? $"Tencent SES unreachable at {endpoint}: {h.Message}" : null, () => step, () => null, null, ct);
    }

    /// <summary>Runs a check under the total timeout and turns every failure into a sentence.</summary>
    private async Task<CheckResult> RunAsync(Func<CancellationToken, Task<CheckResult>> check, Func<Exception, string?> specific, Func<string> step,
        Func<string?> certificateProblem, ReplyLog? replies, CancellationToken ct)
    {
        using var total = CancellationTokenSource.CreateLinkedTokenSource(ct);
        total.CancelAfter(O.VerifyTimeout);
        try
        {
            return await check(total.Token);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var what = specific(ex) ?? ex switch
            {
                ProviderTargetException => ex.Message,
                OperationCanceledException => $"{step()}: no answer within {O.VerifyTimeout} (ProviderCredentials:VerifyTimeout)",
                TimeoutException => $"{step()}: {ex.Message}",
                SocketException { SocketErrorCode: SocketError.ConnectionRefused } => $"connection refused: nothing accepts connections on that port",
                SocketException s => $"{step()}: {s.SocketErrorCode}: {s.Message}",
                SslHandshakeException => certificateProblem() ?? "TLS handshake failed (no TLS on that port, or no common protocol): " + FirstLine(ex.Message),
                NotSupportedException => $"{step()}: {ex.Message}",
                IOException { InnerException: TimeoutException t } => $"{step()}: {t.Message}",
                IOException or ProtocolException or ServiceNotConnectedException => $"{step()}: the connection broke: {FirstLine(ex.Message)}",
                _ => $"{step()}: {ex.GetType().Name}: {FirstLine(ex.Message)}",
            };
            var said = replies?.ToString();
            return new CheckResult(false, string.IsNullOrEmpty(said) ? what : what + "\n" + said);
        }
    }

    /// <summary>One step, bounded by the command timeout (and the check's total).</summary>
    private async Task<T> WithinAsync<T>(CancellationToken total, Func<CancellationToken, Task<T>> step)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(total);
        timeout.CancelAfter(O.CommandTimeout);
        try
        {
            return await step(timeout.Token);
        }
        catch (OperationCanceledException) when (!total.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {O.CommandTimeout} (ProviderCredentials:CommandTimeout)");
        }
    }

    private Task WithinAsync(CancellationToken total, Func<CancellationToken, Task> step) =>
        WithinAsync(total, async t =>
        {
            await step(t);
            return true;
        });

    private static async Task QuietlyAsync(Func<Task> close)
    {
        try
        {
            await close();
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or ProtocolException or CommandException or ServiceNotConnectedException or SocketException)
        {
            // The check already passed; a server that drops the connection at QUIT/LOGOUT does not undo it.
        }
    }

    private static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();
}
