using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;
using SendEngine.Features.ApiKeys;

namespace SendEngine.Extensions;

public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>Member Center's issuer: the expected <c>iss</c> and the base of the discovery document.</summary>
    [Required, Url]
    public string Issuer { get; set; } = "http://localhost:7850/";

    /// <summary>The expected <c>aud</c>.</summary>
    [Required]
    public string SendEngineAudience { get; set; } = Audiences.SendEngineApi;

    /// <summary>False only for local development and tests, where Member Center runs on plain http.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often Member Center's JWKS is read again: a key revoked there is refused here within this interval.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>Resource-server token validation: Member Center's JWTs, checked against its discovery document and JWKS.</summary>
public static class AuthExtensions
{
    public const string SendWrite = "send:write";
    public const string SendRead = "send:read";
    public const string LogsRead = "logs:read";
    /// <summary>send.read and the right to see message content (<see cref="CanReadContent"/>).</summary>
    public const string ContentRead = "send:content";
    public const string InternalSubscribers = "internal:subscribers";
    /// <summary>Platform administration (platform:admin tokens, which Member Center issues for this audience too).</summary>
    public const string Admin = "admin";

    public static WebApplicationBuilder AddSendEngineAuth(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        // Bound here because OpenIddict's builder needs the values while services are registered.
        var auth = builder.Configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        var issuer = new Uri(auth.Issuer, UriKind.Absolute);
        if (auth.RequireHttpsMetadata && issuer.Scheme != Uri.UriSchemeHttps)
        {
            throw new InvalidOperationException($"Auth:Issuer {issuer} is not https; set Auth__RequireHttpsMetadata=false for local development only.");
        }

        builder.Services.AddOpenIddict().AddValidation(o =>
        {
            // Discovery at {issuer}.well-known/openid-configuration. The keys come from JwksRefresher, not from
            // OpenIddict's 12-hour cache: PinAccessTokenValidation gives each token the keys published now.
            o.SetIssuer(issuer);
            // Tenants' send_api tokens, and the tokens Member Center mints for itself for the internal routes.
            o.AddAudiences(auth.SendEngineAudience, Audiences.SendEngineInternal);
            o.UseSystemNetHttp();
            o.UseAspNetCore();
            o.Configure(v => v.TokenValidationParameters.ClockSkew = auth.ClockSkew);
            o.AddEventHandler(PinAccessTokenValidation.Descriptor);
        });
        builder.Services.AddSingleton<JwksRefresher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JwksRefresher>());
        builder.Services.AddHttpClient(JwksRefresher.HttpClientName);
        builder.Services.AddAuthentication(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(SendWrite, p => Require(p, auth.SendEngineAudience, Scopes.SendWrite))
            .AddPolicy(SendRead, p => Require(p, auth.SendEngineAudience, Scopes.SendRead))
            .AddPolicy(LogsRead, p => Require(p, auth.SendEngineAudience, Scopes.LogsRead))
            .AddPolicy(ContentRead, p =>
            {
                Require(p, auth.SendEngineAudience, Scopes.SendRead);
                p.RequireAssertion(ctx => ctx.User.CanReadContent());
            })
            .AddPolicy(InternalSubscribers, p =>
            {
                p.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
                p.RequireAuthenticatedUser();
                // Member Center's own token: internal audience and scope, and no tenant (a tenant token never passes).
                p.RequireAssertion(ctx => ctx.User.HasScope(Scopes.InternalSubscribersErase)
                    && ctx.User.GetAudiences().Contains(Audiences.SendEngineInternal) && !ctx.User.HasTenant());
            })
            .AddPolicy(Admin, p => p
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(ctx => ctx.User.HasScope(Scopes.PlatformAdmin) && ctx.User.GetAudiences().Contains(auth.SendEngineAudience)));
        return builder;
    }

    /// <summary>
    /// ASP.NET Core's authentication middleware (the default scheme: OpenIddict's token validation), except on routes that
    /// authenticate with X-Pigeon-Api-Key only (<see cref="ApiKeyOnly"/>): their policy runs the key scheme and replaces
    /// the user, so validating a bearer token there was thrown away; OpenIddict's request and authentication pipelines
    /// were about 3 % of Send Engine's CPU per transactional request. Answers are the same: the key scheme alone decides.
    /// </summary>
    public static WebApplication UseSendEngineAuthentication(this WebApplication app)
    {
        app.UseMiddleware<SelectiveAuthenticationMiddleware>();
        // What UseAuthentication() records, so that WebApplication does not add the middleware again in front of the
        // pipeline (were the key renamed in a later framework, it would: slower, the same answers).
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        return app;
    }

    private sealed class SelectiveAuthenticationMiddleware(RequestDelegate next, IAuthenticationSchemeProvider schemes)
    {
        private readonly RequestDelegate _next = next;
        private readonly AuthenticationMiddleware _authentication = new(next, schemes);

        public Task Invoke(HttpContext context) =>
            context.GetEndpoint()?.Metadata.GetMetadata<ApiKeyOnly>() is not null ? _next(context) : _authentication.Invoke(context);
    }

    /// <summary>
    /// Whether the caller may see message bodies, attachments and merge data: a person's token needs
    /// newsletter:content.read (viewers lack it); a client-credentials token (no <c>role</c> claim) keeps what send_api
    /// clients always had, so tenants' integrations did not change.
    /// </summary>
    public static bool CanReadContent(this ClaimsPrincipal user) =>
        user.HasScope(Scopes.ContentRead) || user.FindFirst(ClaimNames.Role) is null;

    /// <summary>Whether the token is a person's (it names their role in the tenant), not an API client's.</summary>
    public static bool IsPerson(this ClaimsPrincipal user) => user.FindFirst(ClaimNames.Role) is not null;

    /// <summary>Who did it, for records like a resolution: <c>user:&lt;sub&gt;</c> for a person, <c>client:&lt;client_id&gt;</c> otherwise.</summary>
    public static string Actor(this ClaimsPrincipal user) => user.IsPerson()
        ? "user:" + (user.FindFirst(ClaimNames.Subject)?.Value ?? "?")
        : "client:" + (user.FindFirst(ClaimNames.ClientId)?.Value ?? "?");

    private static void Require(AuthorizationPolicyBuilder policy, string audience, string scope)
    {
        policy.AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        policy.RequireAuthenticatedUser();
        policy.RequireAssertion(ctx => ctx.User.HasScope(scope) && ctx.User.GetAudiences().Contains(audience) && ctx.User.HasTenant());
    }
}
