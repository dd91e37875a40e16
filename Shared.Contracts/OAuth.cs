namespace Newsletter.Contracts;

// Member Center's token endpoint (integration guide section 1, RFC 6749 section 4.4). Form-encoded in, JSON out.

/// <summary>The form fields of POST /oauth/token; the client may send its credentials by HTTP Basic instead.</summary>
public sealed record TokenRequestForm(string GrantType, string? ClientId, string? ClientSecret, string? Scope);

/// <summary>RFC 6749 section 5.1: access_token is a JWS (RS256) to verify with the JWKS.</summary>
public sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn, string? Scope);

/// <summary>RFC 6749 section 5.2: invalid_client, invalid_scope, unsupported_grant_type, invalid_request.</summary>
public sealed record OAuthErrorResponse(string Error, string? ErrorDescription, string? ErrorUri);
