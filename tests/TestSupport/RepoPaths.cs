namespace Newsletter.TestSupport;

/// <summary>Locates the repository checkout the tests were built from.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    /// <summary>The folder holding Newsletter.sln, found by walking up from the test binaries.</summary>
    public static string Root => LazyRoot.Value;

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Newsletter.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"Could not find Newsletter.sln in any parent of {AppContext.BaseDirectory}; run the tests from inside the repository.");
    }
}
