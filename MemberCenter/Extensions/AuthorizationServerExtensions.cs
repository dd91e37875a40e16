using System.Security.Cryptography;
using MemberCenter.Data;
using MemberCenter.Features.Auth;
using MemberCenter.Features.People;
using OpenIddict.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using OpenIddict.EntityFrameworkCore.Models;
using OpenIddict.Server;
using OpenIddict.Validation.AspNetCore;

namespace MemberCenter.Extensions;

public static class AuthorizationServerExtensions
{
    /// <summary>OpenIddict issuing signed, unencrypted JWTs: client_credentials for sites and services, code + PKCE for people.</summary>
    public static WebApplicationBuilder AddAuthorizationServer(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<SigningKeyOptions>().BindConfiguration(SigningKeyOptions.Section).ValidateDataAnnotations()
            .Validate<IHostEnvironment>((o, env) => o.Password is not null || o.AllowUnencrypted || !env.IsProduction(),
                "Auth:SigningKeys:Password (Auth__SigningKeys__Password, at least 16 characters) is required in Production: it encrypts "
                + "the private signing keys stored in PostgreSQL. Set Auth__SigningKeys__AllowUnencrypted=true to store them unencrypted.")
            .ValidateOnStart();
        services.AddOptions<BootstrapOptions>().BindConfiguration(BootstrapOptions.Section)
            .Validate(o => (o.AdminClientId is null) == (o.AdminClientSecret is null), "Bootstrap:AdminClientId and Bootstrap:AdminClientSecret go together.")
            .Validate(o => (o.SendEngineClientId is null) == (o.SendEngineClientSecret is null), "Bootstrap:SendEngineClientId and Bootstrap:SendEngineClientSecret go together.")
            .Validate(o => (o.AdminClientSecret?.Length ?? 32) >= 16 && (o.SendEngineClientSecret?.Length ?? 32) >= 16, "Bootstrap client secrets must be at least 16 characters.")
            .Validate(o => (o.OperatorEmail is null) == (o.OperatorPassword is null), "Bootstrap:OperatorEmail and Bootstrap:OperatorPassword go together.")
            .ValidateOnStart();

        // Bound here (not through IOptions) because OpenIddict's builder needs the values while services are registered.
        var auth = builder.Configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();

        services.AddSingleton<SigningKeyRing>();
        services.AddHostedService(sp => sp.GetRequiredService<SigningKeyRing>());
        services.AddSingleton<IConfigureOptions<OpenIddictServerOptions>>(sp => sp.GetRequiredService<SigningKeyRing>());
        services.AddScoped<ApiClientRegistry>();
        services.AddSingleton<ApiClientCache>();
        services.AddSingleton<ClientAuthenticationThrottle>();
        // Holds client lookups and verified secrets: bounded by the number of clients.
        services.AddMemoryCache();

        services.AddOpenIddict()
            .AddCore(o =>
            {
                o.UseEntityFrameworkCore().UseDbContext<MemberCenterDbContext>();
                o.ReplaceApplicationManager<OpenIddictEntityFrameworkCoreApplication, CachingApplicationManager>();
            })
            .AddServer(o =>
            {
                // Read here, before options validation runs, so a bad value must name its key itself.
                o.SetIssuer(Uri.TryCreate(auth.Issuer, UriKind.Absolute, out var issuer) ? issuer
                    : throw new InvalidOperationException($"Auth:Issuer (Auth__Issuer) must be an absolute URL; got '{auth.Issuer}'."));
                o.SetTokenEndpointUris("oauth/token");
                o.SetJsonWebKeySetEndpointUris(".well-known/jwks");
                o.SetAuthorizationEndpointUris("connect/authorize");
                o.SetEndSessionEndpointUris("connect/logout");
                o.AllowClientCredentialsFlow();
                // People sign in to the console: code flow, PKCE for every code (S256 only, below), refresh tokens.
                o.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange();
                o.AllowRefreshTokenFlow();
                o.Configure(options => options.CodeChallengeMethods.Remove(OpenIddictConstants.CodeChallengeMethods.Plain));
                o.SetAccessTokenLifetime(auth.AccessTokenLifetime);
                o.RegisterScopes([.. ClientUsagePolicy.AllScopes.Union(RoleScopes.All).Union([OpenIddictConstants.Scopes.OpenId, OpenIddictConstants.Scopes.OfflineAccess])]);
                // Scopes are checked against the client's usage by TokenEndpoint (answering invalid_scope).
                o.IgnoreScopePermissions();
                // Tenants verify tokens with the JWKS alone, so access tokens are signed JWTs, not JWE.
                o.DisableAccessTokenEncryption();
                // Codes and refresh tokens are stored (a code is redeemed once); access tokens are not (AccessTokenEntries).
                o.AddEventHandler(AccessTokenEntries.Descriptor);
                // OpenIddict insists on an encryption key even though no token it issues here is encrypted.
                o.AddEncryptionKey(new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)));
                // Counts a secret check before its PBKDF2 hash runs (OpenIddict's own handler cannot).
                o.RemoveEventHandler(OpenIddictServerHandlers.ValidateClientSecret.Descriptor);
                o.AddEventHandler(ClientAuthenticationThrottle.ValidateClientSecret.Descriptor);
                o.AddEventHandler(ClientAuthenticationThrottle.AnswerTooManyRequests.Descriptor);
                var aspnet = o.UseAspNetCore().EnableTokenEndpointPassthrough()
                    .EnableAuthorizationEndpointPassthrough().EnableEndSessionEndpointPassthrough();
                if (!auth.RequireHttps)
                {
                    aspnet.DisableTransportSecurityRequirement();
                }
            })
            .AddValidation(o =>
            {
                o.UseLocalServer();
                o.AddAudiences(Audiences.MemberCenterApi, Audiences.MemberCenterAdmin, Audiences.MemberCenterInternal);
                o.UseAspNetCore();
            });

        services.AddAuthentication(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        services.AddMemberCenterAuthorization();
        return builder;
    }

    /// <summary>Authentication and authorization; the token endpoint's throttle runs inside OpenIddict (ClientAuthenticationThrottle).</summary>
    public static WebApplication UseAuthorizationServer(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        return app;
    }
}
