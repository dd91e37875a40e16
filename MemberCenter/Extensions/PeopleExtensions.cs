using MemberCenter.Data;
using MemberCenter.Features.Auth;
using MemberCenter.Features.People;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MemberCenter.Extensions;

public static class PeopleExtensions
{
    /// <summary>
    /// People: Identity on Member Center's database with its own cookie (Identity.Application, not the default scheme:
    /// APIs keep authenticating bearer tokens), the /account pages, the authorize endpoint's services.
    /// </summary>
    public static WebApplicationBuilder AddPeople(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ConsoleOptions>().BindConfiguration(ConsoleOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<PeopleOptions>().BindConfiguration(PeopleOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        var people = builder.Configuration.GetSection(PeopleOptions.Section).Get<PeopleOptions>() ?? new PeopleOptions();
        // Secure cookies wherever tokens require https; plain http only where Auth:RequireHttps=false (local development, tests).
        var secure = builder.Configuration.GetValue(AuthOptions.Section + ":" + nameof(AuthOptions.RequireHttps), true)
            ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;

        services.AddIdentityCore<Person>(o =>
            {
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
                o.Lockout.AllowedForNewUsers = true;
                o.User.RequireUniqueEmail = true;
                // User names are e-mail addresses, whatever characters those hold.
                o.User.AllowedUserNameCharacters = "";
                o.SignIn.RequireConfirmedEmail = true;
                // Length over composition rules (NIST SP 800-63B).
                o.Password.RequiredLength = 12;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Tokens.AuthenticatorIssuer = "Newsletter platform";
                // Schema version 3 adds the passkeys table (user_passkeys).
                o.Stores.SchemaVersion = IdentitySchemaVersions.Version3;
            })
            .AddRoles<IdentityRole<Guid>>()
            .AddEntityFrameworkStores<MemberCenterDbContext>()
            .AddSignInManager()
            .AddDefaultTokenProviders();
        // Passkeys are discoverable (the login page asks for one without an address) and verify the person (PIN or
        // biometrics), so a passkey alone is a two-factor sign-in. The relying party id is People:PasskeyServerDomain, by
        // default the host the request came to.
        services.Configure<IdentityPasskeyOptions>(o =>
        {
            o.ServerDomain = people.PasskeyServerDomain;
            o.ResidentKeyRequirement = "required";
            o.UserVerificationRequirement = "required";
            // Identity's default compares with the request's Origin header, which Chromium sends as "null" from these
            // pages (Referrer-Policy: no-referrer). The credential's origin must be this site as the request reached
            // it (scheme from trusted forwarded headers), never a cross-origin frame.
            o.ValidateOrigin = context =>
            {
                var request = context.HttpContext.Request;
                return ValueTask.FromResult(!context.CrossOrigin && context.TopOrigin is null
                    && string.Equals(context.Origin, $"{request.Scheme}://{request.Host.Value}", StringComparison.OrdinalIgnoreCase));
            };
        });
        services.TryAddScoped<IPasskeyHandler<Person>, PasskeyHandler<Person>>();
        // Reset and confirmation links live as long as the mail is worth acting on.
        services.Configure<DataProtectionTokenProviderOptions>(o => o.TokenLifespan = TimeSpan.FromHours(2));
        services.AddAuthentication().AddIdentityCookies();
        services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = "mc_session";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Cookie.SecurePolicy = secure;
            o.LoginPath = "/account/login";
            o.LogoutPath = "/account/logout";
            o.AccessDeniedPath = "/account/login";
            o.ExpireTimeSpan = people.SessionLifetime;
            o.SlidingExpiration = true;
        });
        services.Configure<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions>(IdentityConstants.TwoFactorUserIdScheme, o =>
        {
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Cookie.SecurePolicy = secure;
        });
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "mc_antiforgery";
            o.Cookie.SecurePolicy = secure;
            o.Cookie.SameSite = SameSiteMode.Strict;
        });
        services.AddRazorPages(o =>
        {
            // The pages live with their feature; their routes are set by their @page directives (/account/...).
            o.RootDirectory = "/Features/People/Pages";
            o.Conventions.ConfigureFilter(new AccountPageHeaders());
        });
        // Razor Pages bring MVC, whose JSON options Swashbuckle then reads: they must be the APIs' (snake_case) ones.
        services.Configure<Microsoft.AspNetCore.Mvc.JsonOptions>(o => Newsletter.ServiceDefaults.ServiceDefaultsExtensions.ConfigureJson(o.JsonSerializerOptions));
        services.AddScoped<PersonTokens>();
        services.AddScoped<PeopleService>();
        services.AddScoped<AccountMailComposer>();
        return builder;
    }
}
