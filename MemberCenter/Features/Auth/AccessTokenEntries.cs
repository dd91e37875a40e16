using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace MemberCenter.Features.Auth;

/// <summary>
/// Token storage is on for authorization codes and refresh tokens (a code is redeemable once, a refresh token can be
/// revoked), but access and identity tokens are self-contained JWTs that relying parties check against the JWKS: a row
/// per token would cost every client_credentials request a write and revoke nothing.
/// </summary>
public sealed class AccessTokenEntries : IOpenIddictServerHandler<GenerateTokenContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } = OpenIddictServerHandlerDescriptor.CreateBuilder<GenerateTokenContext>()
        .UseSingletonHandler<AccessTokenEntries>()
        // Before every built-in handler, OpenIddict's CreateTokenEntry among them.
        .SetOrder(int.MinValue + 10)
        .SetType(OpenIddictServerHandlerType.Custom)
        .Build();

    public ValueTask HandleAsync(GenerateTokenContext context)
    {
        if (context.TokenType is TokenTypeIdentifiers.AccessToken or TokenTypeIdentifiers.IdentityToken)
        {
            context.CreateTokenEntry = false;
        }
        return ValueTask.CompletedTask;
    }
}
