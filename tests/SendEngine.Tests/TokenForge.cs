using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>
/// Mints access tokens with Member Center's real signing key (read from its database) or a stranger's key, to test
/// each claim check separately: only the claim under test is wrong.
/// </summary>
public sealed class TokenForge(StackFixture stack)
{
    public async Task<SigningCredentials> MemberCenterKeyAsync()
    {
        await using var conn = new NpgsqlConnection(stack.MemberCenterConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT certificate FROM signing_keys WHERE not_before <= now() AND not_after > now() ORDER BY not_before DESC LIMIT 1", conn);
        var pfx = (byte[])(await cmd.ExecuteScalarAsync())!;
        var cert = X509CertificateLoader.LoadPkcs12(pfx, null, X509KeyStorageFlags.EphemeralKeySet);
        return new SigningCredentials(new X509SecurityKey(cert), SecurityAlgorithms.RsaSha256);
    }

    public static SigningCredentials StrangerKey() =>
        new(new RsaSecurityKey(RSA.Create(2048)) { KeyId = "stranger-" + Guid.NewGuid().ToString("N") }, SecurityAlgorithms.RsaSha256);

    /// <summary>
    /// Member Center's current key as an HMAC secret: the public key in PEM, as anyone can rebuild it from the JWKS
    /// (the "HS256 signed with the public key" algorithm-confusion attack), under the real key's kid.
    /// </summary>
    public static SigningCredentials PublicKeyAsHmacSecret(SigningCredentials memberCenterKey)
    {
        var x509 = (X509SecurityKey)memberCenterKey.Key;
        var pem = x509.Certificate.GetRSAPublicKey()!.ExportSubjectPublicKeyInfoPem();
        return new(new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(pem)) { KeyId = x509.KeyId }, SecurityAlgorithms.HmacSha256);
    }

    /// <summary>The token's claims under <c>{"alg":"none"}</c> with its kid and typ, and no signature.</summary>
    public static string Unsigned(string token)
    {
        var jwt = new JsonWebToken(token);
        var header = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["alg"] = "none", ["kid"] = jwt.Kid, ["typ"] = jwt.Typ });
        return Base64UrlEncoder.Encode(header) + "." + token.Split('.')[1] + ".";
    }

    /// <param name="tweak">Changes the token before it is signed: its header type, times, claims or signing credentials.</param>
    public string Mint(SigningCredentials key, string? tenantId, string scope = Scopes.SendWrite + " " + Scopes.SendRead,
        string? issuer = null, string audience = Audiences.SendEngineApi, DateTime? expires = null, Action<SecurityTokenDescriptor>? tweak = null)
    {
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object>
        {
            ["sub"] = "send-api-forged",
            [ClaimNames.ClientId] = "send-api-forged",
            [ClaimNames.Scope] = scope,
            ["jti"] = Guid.NewGuid().ToString(),
        };
        if (tenantId is not null)
        {
            claims[ClaimNames.TenantId] = tenantId;
        }
        var exp = expires ?? now.AddMinutes(10);
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer ?? stack.MemberCenterUrl + "/",
            Audience = audience,
            Claims = claims,
            IssuedAt = exp.AddMinutes(-20) < now ? exp.AddMinutes(-20) : now,
            NotBefore = exp.AddMinutes(-20) < now ? exp.AddMinutes(-20) : now,
            Expires = exp,
            SigningCredentials = key,
            TokenType = "at+jwt",
        };
        tweak?.Invoke(descriptor);
        return new JsonWebTokenHandler().CreateToken(descriptor);
    }
}
