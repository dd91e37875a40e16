using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.ProviderCredentials;
using Newsletter.ServiceDefaults.Mail;
using SendEngine.Data;
using SendEngine.Features.Tencent;
using SendEngine.Transports;

namespace SendEngine.Features.ProviderCredentials;

/// <summary>
/// Which provider a tenant's mail goes through: its active credential when that is verified, else none (the platform
/// default). Lookups are cached for <see cref="ProviderCredentialOptions.LookupCacheDuration"/>; the API drops a
/// tenant's entry when it changes a credential, so a change made through this process applies to the next job or batch.
/// Transports are built per credential and kept while its <see cref="ProviderCredential.UpdatedAt"/> is the same: a
/// changed secret or setting builds a new one (new SMTP connections), the old one is dropped.
/// </summary>
public sealed class TenantProviders(IServiceScopeFactory scopes, IOptions<ProviderCredentialOptions> options, TimeProvider clock,
    ProviderSecretProtector secrets, ProviderNetwork network, IOptions<SmtpOptions> smtp, IOptionsMonitor<TencentSesOptions> tencent,
    IHttpClientFactory httpFactory, ILoggerFactory loggers)
{
    private readonly ConcurrentDictionary<Guid, (ProviderCredential? Credential, DateTimeOffset Until)> _lookups = new();
    private readonly ConcurrentDictionary<Guid, (DateTimeOffset Version, ITransport Transport)> _transports = new();

    public void Invalidate(Guid tenantId) => _lookups.TryRemove(tenantId, out _);

    /// <summary>The tenant's own transport (unmetered), or null when it has no active verified credential.</summary>
    public async ValueTask<ITransport?> TransportForAsync(Guid tenantId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (!_lookups.TryGetValue(tenantId, out var cached) || cached.Until <= now)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SendEngineDbContext>();
            var credential = await db.Set<ProviderCredential>().AsNoTracking()
                .FirstOrDefaultAsync(c => c.TenantId == tenantId && c.Active && c.Status == VerificationStatuses.Verified, ct);
            cached = (credential, now + options.Value.LookupCacheDuration);
            _lookups[tenantId] = cached;
        }
        if (cached.Credential is not { } c)
        {
            return null;
        }
        if (_transports.TryGetValue(c.Id, out var built) && built.Version == c.UpdatedAt)
        {
            return built.Transport;
        }
        var transport = Build(c);
        _transports[c.Id] = (c.UpdatedAt, transport);
        return transport;
    }

    private ITransport Build(ProviderCredential c)
    {
        var secret = c.Secret is { } s ? secrets.Unprotect(c.Id, s) : null;
        if (c.Kind == ProviderKinds.Tencent)
        {
            var platform = tencent.CurrentValue;
            var own = new TencentSesOptions
            {
                SecretId = c.Username, SecretKey = secret, Region = c.Region ?? platform.Region, Endpoint = c.Endpoint ?? platform.Endpoint,
                Service = platform.Service, FromAddress = platform.FromAddress, Unsubscribe = platform.Unsubscribe, TriggerType = platform.TriggerType,
                Timeout = platform.Timeout, HttpRetries = platform.HttpRetries, HttpRetryBaseDelay = platform.HttpRetryBaseDelay,
            };
            return new TencentSesTransport(httpFactory, new FixedOptionsMonitor<TencentSesOptions>(own), clock, loggers.CreateLogger<TencentSesTransport>());
        }
        var p = smtp.Value;
        var relay = new SmtpOptions
        {
            Host = c.Host!, Port = c.Port ?? 587, Username = c.Username, Password = secret, UseTls = c.Tls != SmtpTlsModes.None,
            FromAddress = p.FromAddress, FromName = p.FromName, ReplyToAddress = p.ReplyToAddress,
            CommandTimeout = p.CommandTimeout, DataTimeout = p.DataTimeout,
        };
        return new SmtpTransport(Options.Create(relay), loggers.CreateLogger<SmtpTransport>())
        {
            Connection = new SmtpConnectionSettings(ProviderVerifier.SmtpTls(c.Tls ?? SmtpTlsModes.StartTls), network.CertificateValidation(),
                network.ResolveAsync, options.Value.ConnectTimeout),
        };
    }

    private sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;

        public T Get(string? name) => value;

        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }
}
