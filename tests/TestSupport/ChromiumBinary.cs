namespace Newsletter.TestSupport;

/// <summary>
/// Which chromium the browser tests launch, and how (CHROMIUM_PATH overrides both choices).
/// <see cref="HeadlessShellPath"/>: Debian's <c>chromium-headless-shell</c> (the old headless mode, no browser UI to
/// composite), for the Console tests: alone on two cores their chromium took 304 s of CPU with the full browser and
/// 116 s with the shell (docs/infrastructure.md). <see cref="FullBrowserPath"/>: the full browser, for Member Center's
/// tests, whose page routes answer the redirect to the console's URL: the shell sends such a redirect past the route
/// (connection refused at the unreachable console).
/// </summary>
public static class ChromiumBinary
{
    private const string HeadlessShell = "/usr/lib/chromium/chromium-headless-shell";
    private const string FullBrowser = "/usr/bin/chromium";

    public static string HeadlessShellPath => Override ?? (File.Exists(HeadlessShell) ? HeadlessShell : FullBrowser);

    public static string FullBrowserPath => Override ?? FullBrowser;

    private static string? Override => Environment.GetEnvironmentVariable("CHROMIUM_PATH") is { Length: > 0 } path ? path : null;

    /// <summary>No sandbox (tests run as root), no GPU, no background traffic.</summary>
    public static IReadOnlyList<string> Args { get; } =
        ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
}
