using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using NewsletterConsole.Auth;

namespace NewsletterConsole.Extensions;

/// <summary>
/// Sign-in through Member Center (authorization code + PKCE as the confidential client <c>console</c>); the tokens stay
/// in the console's database (<see cref="DatabaseTicketStore"/>) and the browser holds an HttpOnly, SameSite=Lax session
/// cookie.
/// </summary>
public static class AuthenticationExtensions
{
    /// <summary>AuthenticationProperties item: the tenant to ask Member Center for (the authorize request's tenant_id).</summary>
    public const string TenantItem = "tenant_id";
    /// <summary>AuthenticationProperties item: "none" for the one-click tenant switch (no page at Member Center).</summary>
    public const string PromptItem = "prompt";

    public static WebApplicationBuilder AddConsoleAuthentication(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var secure = builder.Environment.IsDevelopment() ? CookieSecurePolicy.SameAsRequest : CookieSecurePolicy.Always;
        services.AddSingleton<DatabaseTicketStore>();
        services.AddHttpClient<TokenRefresher>();
        services.AddAuthentication(o =>
            {
                o.DefaultScheme = CookieAuthenticationDefaults.AuthenticationScheme;
                o.DefaultChallengeScheme = OpenIdConnectDefaults.AuthenticationScheme;
            })
            .AddCookie()
            .AddOpenIdConnect();
        services.AddOptions<CookieAuthenticationOptions>(CookieAuthenticationDefaults.AuthenticationScheme)
            .Configure<DatabaseTicketStore, IOptions<ConsoleOptions>>((o, store, console) =>
            {
                o.Cookie.Name = "newsletter_console";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.Cookie.SecurePolicy = secure;
                o.SessionStore = store;
                o.ExpireTimeSpan = console.Value.SessionIdleTimeout;
                o.SlidingExpiration = true;
                o.AccessDeniedPath = "/StatusCode/403";
                o.Events.OnValidatePrincipal = ctx => ctx.HttpContext.RequestServices.GetRequiredService<TokenRefresher>().ValidatePrincipalAsync(ctx);
            });
        services.AddOptions<OpenIdConnectOptions>(OpenIdConnectDefaults.AuthenticationScheme)
            .Configure<IOptions<ConsoleOptions>, IOptions<ConsoleAuthOptions>>((o, console, auth) =>
            {
                var c = console.Value;
                o.Authority = auth.Value.Issuer;
                // Discovery is read where the console reaches Member Center (a container name in compose); the issuer
                // in it is still Auth__Issuer.
                o.MetadataAddress = c.MemberCenterUrl.TrimEnd('/') + "/.well-known/openid-configuration";
                o.RequireHttpsMetadata = o.MetadataAddress.StartsWith("https:", StringComparison.OrdinalIgnoreCase);
                o.ClientId = c.ClientId;
                o.ClientSecret = c.ClientSecret;
                o.ResponseType = OpenIdConnectResponseType.Code;
                o.ResponseMode = OpenIdConnectResponseMode.Query;
                o.UsePkce = true;
                // The callback is a top-level GET redirect (response_mode=query), which Lax cookies survive; the default
                // SameSite=None would need Secure, which a plain-http development console cannot set.
                o.CorrelationCookie.SameSite = SameSiteMode.Lax;
                o.NonceCookie.SameSite = SameSiteMode.Lax;
                o.CorrelationCookie.SecurePolicy = secure;
                o.NonceCookie.SecurePolicy = secure;
                o.SaveTokens = true;
                o.MapInboundClaims = false;
                o.GetClaimsFromUserInfoEndpoint = false;
                o.CallbackPath = "/signin-oidc";
                o.SignedOutCallbackPath = "/signout-callback-oidc";
                o.SignedOutRedirectUri = "/SignedOut";
                o.Scope.Clear();
                foreach (var scope in ConsoleScopes.Requested)
                {
                    o.Scope.Add(scope);
                }
                o.TokenValidationParameters.NameClaimType = ConsoleClaims.Name;
                o.TokenValidationParameters.RoleClaimType = ConsoleClaims.Role;
                o.Events.OnRedirectToIdentityProvider = ctx =>
                {
                    if (ctx.Properties.Items.TryGetValue(TenantItem, out var tenant) && !string.IsNullOrEmpty(tenant))
                    {
                        ctx.ProtocolMessage.SetParameter("tenant_id", tenant);
                    }
                    if (ctx.Properties.Items.TryGetValue(PromptItem, out var prompt) && !string.IsNullOrEmpty(prompt))
                    {
                        ctx.ProtocolMessage.Prompt = prompt;
                    }
                    return Task.CompletedTask;
                };
                // The cookie's principal is the access token's claims (tenant, role, scopes): what the services enforce.
                o.Events.OnTokenValidated = ctx =>
                {
                    if (ctx.TokenEndpointResponse?.AccessToken is { } accessToken)
                    {
                        ctx.Principal = ConsoleClaims.FromAccessToken(accessToken);
                    }
                    return Task.CompletedTask;
                };
                o.Events.OnRemoteFailure = ctx =>
                {
                    var error = ctx.Failure?.Message ?? "";
                    var silent = ctx.Properties?.Items.TryGetValue(PromptItem, out var p) == true && p == "none";
                    if (silent && (error.Contains("login_required", StringComparison.Ordinal)
                        || error.Contains("interaction_required", StringComparison.Ordinal)
                        || error.Contains("consent_required", StringComparison.Ordinal)))
                    {
                        // The Member Center session is gone: the same switch, with its sign-in page this time.
                        var tenant = ctx.Properties?.Items.TryGetValue(TenantItem, out var t) == true ? t : null;
                        ctx.Response.Redirect("/Account/SignIn" + (tenant is null ? "" : "?tenantId=" + Uri.EscapeDataString(tenant)));
                    }
                    else
                    {
                        ctx.Response.Redirect(error.Contains("access_denied", StringComparison.Ordinal) ? "/StatusCode/403" : "/StatusCode/401");
                    }
                    ctx.HandleResponse();
                    return Task.CompletedTask;
                };
            });
        services.AddAuthorization();
        return builder;
    }
}
