using Microsoft.Playwright;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>
/// One Debian chromium (<see cref="Newsletter.TestSupport.ChromiumBinary"/>), headless, without sandbox and background traffic, for the whole assembly:
/// launched when the first browser test asks for it (a run without browser tests never starts it) and closed at the
/// end. Launching it per test cost seconds each on a loaded machine; the tests stay apart through their own browser
/// contexts (<see cref="ChromiumTest"/>).
/// </summary>
public sealed class SharedChromium : IAsyncDisposable
{
    private readonly SemaphoreSlim _launch = new(1, 1);
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public async Task<IBrowser> GetAsync()
    {
        await _launch.WaitAsync();
        try
        {
            if (_browser is { IsConnected: true })
            {
                return _browser;
            }
            _playwright ??= await Playwright.CreateAsync();
            _browser = await _playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = ChromiumBinary.FullBrowserPath,
                Args = ChromiumBinary.Args,
            });
            return _browser;
        }
        finally
        {
            _launch.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }
        _playwright?.Dispose();
        _launch.Dispose();
    }
}

/// <summary>
/// A test class with a browser: <see cref="Browser"/> is the assembly's one chromium (<see cref="SharedChromium"/>),
/// and every context or page a test opens through it (<c>Browser.NewPageAsync</c> makes a context of its own) is
/// closed after that test, so no cookie or storage outlives it.
/// </summary>
public abstract class ChromiumTest : IAsyncLifetime
{
    private IBrowser? _shared;
    private readonly List<IBrowserContext> _contexts = [];
    private readonly Lock _contextsLock = new();

    protected IBrowser Browser => _shared is null
        ? throw new InvalidOperationException("chromium is not launched yet")
        : new TestBrowser(_shared, Track);

    public async ValueTask InitializeAsync()
    {
        var chromium = await TestContext.Current.GetFixture<SharedChromium>()
            ?? throw new InvalidOperationException($"{nameof(SharedChromium)} is not an assembly fixture of this test assembly");
        _shared = await chromium.GetAsync();
    }

    /// <summary>
    /// Opens a mail's HTML in <paramref name="page"/> and follows the link <paramref name="selector"/> until the
    /// address contains <paramref name="urlPart"/> and the new document is parsed. Nothing here waits on Playwright's
    /// load states: leaving a page written by SetContent, chromium's load event was missed twice in CI, once with
    /// WaitForURL's default and once with WaitUntil Commit (Playwright still waited for a load state when the address
    /// already matched). The page's address (updated at each commit) is polled instead, then the document's readyState.
    /// </summary>
    protected static async Task FollowMailLinkAsync(IPage page, string html, string selector, string urlPart)
    {
        await page.SetContentAsync(html);
        await page.ClickAsync(selector);
        await Poll.UntilAsync(() => page.Url.Contains(urlPart, StringComparison.Ordinal), TimeSpan.FromSeconds(90),
            () => $"the link {selector} did not lead to an address containing {urlPart} within 90 s (at {page.Url})");
        await page.WaitForFunctionAsync("document.readyState !== 'loading'");
    }

    private void Track(IBrowserContext context)
    {
        lock (_contextsLock)
        {
            _contexts.Add(context);
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<IBrowserContext> contexts;
        lock (_contextsLock)
        {
            contexts = [.. _contexts];
            _contexts.Clear();
        }
        foreach (var context in contexts)
        {
            try
            {
                await context.CloseAsync();
            }
            catch (PlaywrightException)
            {
                // Already closed (with its page, or by the test itself).
            }
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>The shared browser as one test sees it: the contexts it opens are recorded for closing.</summary>
    private sealed class TestBrowser(IBrowser browser, Action<IBrowserContext> track) : IBrowser
    {
        public event EventHandler<IBrowser>? Disconnected
        {
            add => browser.Disconnected += value;
            remove => browser.Disconnected -= value;
        }

        public IBrowserType BrowserType => browser.BrowserType;
        public IReadOnlyList<IBrowserContext> Contexts => browser.Contexts;
        public bool IsConnected => browser.IsConnected;
        public string Version => browser.Version;

        public async Task<IBrowserContext> NewContextAsync(BrowserNewContextOptions? options = null)
        {
            var context = await browser.NewContextAsync(options);
            track(context);
            return context;
        }

        public async Task<IPage> NewPageAsync(BrowserNewPageOptions? options = null)
        {
            var page = await browser.NewPageAsync(options);
            track(page.Context);
            return page;
        }

        public event EventHandler<IBrowserContext>? Context
        {
            add => browser.Context += value;
            remove => browser.Context -= value;
        }

        public Task<ICDPSession> NewBrowserCDPSessionAsync() => browser.NewBrowserCDPSessionAsync();
        public Task<BrowserBindResult> BindAsync(string title, BrowserBindOptions? options = null) => browser.BindAsync(title, options);
        public Task UnbindAsync() => browser.UnbindAsync();

        // The browser belongs to the assembly: a test closing "its" browser closes only what it opened.
        public Task CloseAsync(BrowserCloseOptions? options = null) => Task.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
