namespace SendEngine.Composition;

public sealed class DkimOptions
{
    public const string Section = "Dkim";

    /// <summary>The signing domain (d=); DKIM is on when Domain, Selector and a key are set.</summary>
    public string? Domain { get; set; }
    public string? Selector { get; set; }
    /// <summary>Path of a PEM RSA private key, or the PEM itself in <see cref="PrivateKey"/>.</summary>
    public string? PrivateKeyPath { get; set; }
    public string? PrivateKey { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Domain) && !string.IsNullOrWhiteSpace(Selector)
                           && (!string.IsNullOrWhiteSpace(PrivateKeyPath) || !string.IsNullOrWhiteSpace(PrivateKey));
}
