using System.Buffers.Text;
using System.Security.Cryptography;
using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace MemberCenter.Features.Auth;

/// <summary>Creates clients and manages their secrets: the ApiClient row and its OpenIddict application together.</summary>
public sealed class ApiClientRegistry(MemberCenterDbContext db, IOpenIddictApplicationManager applications, ApiClientCache cache, TimeProvider clock)
{
    /// <summary>256 bits from the CSPRNG, base64url: what a generated client secret looks like.</summary>
    public static string NewSecret() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    public async Task<ApiClient> CreateAsync(string clientId, Guid? tenantId, string usage, string name, string secret, CancellationToken ct)
    {
        var client = new ApiClient
        {
            Id = Guid.CreateVersion7(),
            ClientId = clientId,
            TenantId = tenantId,
            Usage = usage,
            Name = name,
            CreatedAt = clock.GetUtcNow(),
        };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        db.ApiClients.Add(client);
        await db.SaveChangesAsync(ct);
        await applications.CreateAsync(Descriptor(clientId, name, secret), ct);
        await tx.CommitAsync(ct);
        return client;
    }

    /// <summary>
    /// Creates the client if missing, otherwise makes its tenant, usage and secret the configured ones. For configured
    /// clients, whose configuration is the source of truth: e.g. run.sh's demo settings generated again (a new clone, a
    /// deleted .local) over a database that still has the old demo clients.
    /// </summary>
    public async Task EnsureAsync(string clientId, Guid? tenantId, string usage, string name, string secret, CancellationToken ct)
    {
        var existing = await db.ApiClients.FirstOrDefaultAsync(c => c.ClientId == clientId, ct);
        if (existing is null)
        {
            await CreateAsync(clientId, tenantId, usage, name, secret, ct);
            return;
        }
        if (existing.TenantId != tenantId || existing.Usage != usage)
        {
            existing.TenantId = tenantId;
            existing.Usage = usage;
            await db.SaveChangesAsync(ct);
            cache.Evict(clientId);
        }
        var app = await applications.FindByClientIdAsync(clientId, ct)
            ?? throw new InvalidOperationException($"Client '{clientId}' has no OpenIddict application.");
        if (!await applications.ValidateClientSecretAsync(app, secret, ct))
        {
            await applications.UpdateAsync(app, secret, ct);
        }
    }

    /// <summary>
    /// The console: a confidential client of the authorization code flow (PKCE required) with refresh tokens, its redirect
    /// URIs under its public URL. Created or made to match the configuration, like <see cref="EnsureAsync"/>.
    /// </summary>
    public async Task EnsureCodeClientAsync(string clientId, string name, string secret, Uri redirectUri, Uri postLogoutRedirectUri, CancellationToken ct)
    {
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientSecret = secret,
            ClientType = ClientTypes.Confidential,
            ConsentType = ConsentTypes.Implicit,
            DisplayName = name,
        };
        descriptor.RedirectUris.Add(redirectUri);
        descriptor.PostLogoutRedirectUris.Add(postLogoutRedirectUri);
        descriptor.Permissions.UnionWith([
            Permissions.Endpoints.Authorization, Permissions.Endpoints.Token, Permissions.Endpoints.EndSession,
            Permissions.GrantTypes.AuthorizationCode, Permissions.GrantTypes.RefreshToken, Permissions.ResponseTypes.Code]);
        descriptor.Requirements.Add(Requirements.Features.ProofKeyForCodeExchange);

        if (!await db.ApiClients.AnyAsync(c => c.ClientId == clientId, ct))
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            db.ApiClients.Add(new ApiClient { Id = Guid.CreateVersion7(), ClientId = clientId, Usage = ClientUsagePolicy.Console, Name = name, CreatedAt = clock.GetUtcNow() });
            await db.SaveChangesAsync(ct);
            await applications.CreateAsync(descriptor, ct);
            await tx.CommitAsync(ct);
            return;
        }
        var app = await applications.FindByClientIdAsync(clientId, ct)
            ?? throw new InvalidOperationException($"Client '{clientId}' has no OpenIddict application.");
        // Without the secret (it is stored hashed and kept unless it changed): the rest is compared and written as a whole.
        var current = new OpenIddictApplicationDescriptor();
        await applications.PopulateAsync(current, app, ct);
        if (!current.RedirectUris.SetEquals(descriptor.RedirectUris) || !current.PostLogoutRedirectUris.SetEquals(descriptor.PostLogoutRedirectUris)
            || !current.Permissions.SetEquals(descriptor.Permissions) || !current.Requirements.SetEquals(descriptor.Requirements)
            || current.ConsentType != descriptor.ConsentType)
        {
            descriptor.ClientSecret = null;
            await applications.PopulateAsync(app, descriptor, ct);
            await applications.UpdateAsync(app, ct);
        }
        if (!await applications.ValidateClientSecretAsync(app, secret, ct))
        {
            await applications.UpdateAsync(app, secret, ct);
        }
    }

    public async Task<string?> RotateSecretAsync(string clientId, CancellationToken ct)
    {
        var client = await db.ApiClients.FirstOrDefaultAsync(c => c.ClientId == clientId, ct);
        var app = client is null ? null : await applications.FindByClientIdAsync(clientId, ct);
        if (client is null || app is null)
        {
            return null;
        }
        var secret = NewSecret();
        await applications.UpdateAsync(app, secret, ct);
        client.SecretRotatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        return secret;
    }

    private static OpenIddictApplicationDescriptor Descriptor(string clientId, string name, string secret)
    {
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientSecret = secret,
            ClientType = ClientTypes.Confidential,
            DisplayName = name,
        };
        // Scopes are checked against the client's usage in the token handler, which answers invalid_scope.
        descriptor.Permissions.Add(Permissions.Endpoints.Token);
        descriptor.Permissions.Add(Permissions.GrantTypes.ClientCredentials);
        return descriptor;
    }
}
