using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

// bench/tools/BenchTools: small tools for the benches, no product code.
//   rate URL --rate R --duration SECONDS --body FILE [--header 'Name: value']... [--connections N] [--recipients-per-request K]
//        POSTs FILE to URL at a constant rate (open loop: request i is due at start + i / R whatever the answers do),
//        latency measured from each request's due time (so a stall is not hidden by the client waiting), prints
//        "BENCH requests=… rps=… p50_ms=… p90_ms=… p99_ms=… max_ms=… non2xx=… errors=… late_starts=…".
//        In the body, the text {{n}} becomes the request's number and {{run}} the value of --tag, so each request is unique.
//   receive --urls http://127.0.0.1:PORT --ids FILE
//        Answers every POST 204 and appends its webhook-id header to FILE (one a line, flushed every 100 ms and on exit);
//        GET /count answers the number received by this process. It verifies nothing (the product's tests do).
//   console-signin CONSOLE_URL --email E --password P
//        Signs a person in to the console as a browser would (the console's redirect to Member Center's authorize
//        endpoint, the login form with its antiforgery token, the code back to the console) and prints the console's
//        session cookie as a Cookie header value (newsletter_console=…). Plain http: the console must run in Development.
//   sse-watchers URL --cookie C --count N --seconds S
//        Holds N server-sent-event streams of URL open for S seconds (or until they end), reading every event, and prints
//        "BENCH watchers=… connected=… events=… errors=…".
return args.FirstOrDefault() switch
{
    "rate" => await RateClient.RunAsync(args[1..]),
    "receive" => await Receiver.RunAsync(args[1..]),
    "console-signin" => await ConsoleSignIn.RunAsync(args[1..]),
    "sse-watchers" => await SseWatchers.RunAsync(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: BenchTools rate URL --rate R --duration S --body FILE [--header 'N: V']... | receive --urls URL --ids FILE"
        + " | console-signin CONSOLE_URL --email E --password P | sse-watchers URL --cookie C --count N --seconds S");
    return 2;
}

internal static class Args
{
    public static string? Value(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public static IEnumerable<string> Values(string[] args, string name)
    {
        for (var i = 0; i + 1 < args.Length; i++)
        {
            if (args[i] == name)
            {
                yield return args[i + 1];
            }
        }
    }
}

internal static class RateClient
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = args[0];
        var rate = double.Parse(Args.Value(args, "--rate") ?? "500", CultureInfo.InvariantCulture);
        var duration = double.Parse(Args.Value(args, "--duration") ?? "30", CultureInfo.InvariantCulture);
        var connections = int.Parse(Args.Value(args, "--connections") ?? "64", CultureInfo.InvariantCulture);
        var tag = Args.Value(args, "--tag") ?? "run";
        var template = (await File.ReadAllTextAsync(Args.Value(args, "--body") ?? throw new ArgumentException("--body FILE is required")))
            .Replace("{{run}}", tag, StringComparison.Ordinal);
        var headers = Args.Values(args, "--header").Select(h => h.Split(':', 2)).Select(p => (p[0].Trim(), p[1].Trim())).ToList();
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var total = (int)(rate * duration);
        var latencies = new double[total];
        var non2xx = 0;
        var errors = 0;
        var late = 0;
        string? firstError = null;
        var inFlight = new List<Task>(total);
        var clock = Stopwatch.StartNew();
        var next = 0;
        while (next < total)
        {
            var now = clock.Elapsed.TotalSeconds;
            // Every request due by now starts now; more than 10 ms behind its due time counts as a late start.
            while (next < total && next / rate <= now)
            {
                var i = next++;
                var due = i / rate;
                if (now - due > 0.010)
                {
                    late++;
                }
                inFlight.Add(SendAsync(i, due));
            }
            await Task.Delay(1);
        }
        await Task.WhenAll(inFlight);
        var elapsed = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        double P(double q) => latencies.Length == 0 ? 0 : latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(q * latencies.Length) - 1)];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"BENCH requests={total} seconds={elapsed:F2} target_rps={rate:F0} rps={total / elapsed:F1} p50_ms={P(0.50):F2} p90_ms={P(0.90):F2} p99_ms={P(0.99):F2} max_ms={P(1):F2} non2xx={non2xx} errors={errors} late_starts={late}"));
        if (firstError is not null)
        {
            Console.WriteLine("BENCH_FIRST_ERROR " + firstError);
        }
        return 0;

        async Task SendAsync(int i, double due)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, url)
                {
                    Content = new StringContent(template.Replace("{{n}}", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal),
                        Encoding.UTF8, "application/json"),
                };
                foreach (var (name, value) in headers)
                {
                    request.Headers.TryAddWithoutValidation(name, value);
                }
                using var response = await http.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                if (!response.IsSuccessStatusCode && Interlocked.Increment(ref non2xx) == 1)
                {
                    firstError = $"{(int)response.StatusCode} {body[..Math.Min(200, body.Length)]}";
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                if (Interlocked.Increment(ref errors) == 1)
                {
                    firstError = ex.Message;
                }
            }
            latencies[i] = (clock.Elapsed.TotalSeconds - due) * 1000;
        }
    }
}

internal static class Receiver
{
    public static async Task<int> RunAsync(string[] args)
    {
        var urls = Args.Value(args, "--urls") ?? "http://127.0.0.1:5099";
        var path = Args.Value(args, "--ids") ?? throw new ArgumentException("--ids FILE is required");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(urls);
        var app = builder.Build();
        await using var file = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false), 1 << 16);
        var gate = new Lock();
        long received = 0;
        app.MapPost("/{**rest}", (HttpRequest request) =>
        {
            var id = request.Headers["webhook-id"].ToString();
            lock (gate)
            {
                file.WriteLine(id.Length > 0 ? id : "-");
            }
            Interlocked.Increment(ref received);
            return Results.NoContent();
        });
        app.MapGet("/count", () => Interlocked.Read(ref received).ToString(CultureInfo.InvariantCulture));
        using var flusher = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        var stopping = app.Lifetime.ApplicationStopping;
        var flushing = Task.Run(async () =>
        {
            try
            {
                while (await flusher.WaitForNextTickAsync(stopping))
                {
                    lock (gate)
                    {
                        file.Flush();
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        await app.RunAsync();
        await flushing;
        lock (gate)
        {
            file.Flush();
        }
        return 0;
    }
}

internal static partial class ConsoleSignIn
{
    public static async Task<int> RunAsync(string[] args)
    {
        var console = new Uri(args[0].TrimEnd('/') + "/");
        var email = Args.Value(args, "--email") ?? throw new ArgumentException("--email is required");
        var password = Args.Value(args, "--password") ?? throw new ArgumentException("--password is required");
        var cookies = new CookieContainer();
        using var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, AllowAutoRedirect = true, MaxAutomaticRedirections = 20, UseProxy = false })
        {
            Timeout = TimeSpan.FromSeconds(60),
        };
        // The console sends the browser to Member Center's authorize endpoint, which shows its login page.
        using var login = await http.GetAsync(console);
        var form = await login.Content.ReadAsStringAsync();
        var loginUrl = login.RequestMessage!.RequestUri!;
        if (!loginUrl.AbsolutePath.Contains("/account/login", StringComparison.OrdinalIgnoreCase))
        {
            Console.Error.WriteLine($"expected Member Center's login page, got {(int)login.StatusCode} {loginUrl}");
            return 1;
        }
        // The page has two forms (password and passkey) with the same hidden fields: the first of each name is the password form's.
        var fields = HiddenInputs().Matches(form)
            .GroupBy(m => WebUtility.HtmlDecode(m.Groups["name"].Value))
            .ToDictionary(g => g.Key, g => WebUtility.HtmlDecode(g.First().Groups["value"].Value));
        fields["Email"] = email;
        fields["Password"] = password;
        using var signedIn = await http.PostAsync(loginUrl, new FormUrlEncodedContent(fields));
        var landed = signedIn.RequestMessage!.RequestUri!;
        var session = cookies.GetCookies(console)["newsletter_console"];
        if (!signedIn.IsSuccessStatusCode || landed.Authority != console.Authority || session is null)
        {
            Console.Error.WriteLine($"sign-in stopped at {(int)signedIn.StatusCode} {landed}");
            return 1;
        }
        Console.WriteLine($"{session.Name}={session.Value}");
        return 0;
    }

    /// <summary>Hidden inputs whatever the attribute order (the tag helpers write type, id, name, value).</summary>
    [System.Text.RegularExpressions.GeneratedRegex("""<input(?=[^>]*type="hidden")(?=[^>]*name="(?<name>[^"]*)")(?=[^>]*value="(?<value>[^"]*)")[^>]*>""")]
    private static partial System.Text.RegularExpressions.Regex HiddenInputs();
}

internal static class SseWatchers
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = args[0];
        var cookie = Args.Value(args, "--cookie") ?? throw new ArgumentException("--cookie is required");
        var count = int.Parse(Args.Value(args, "--count") ?? "100", CultureInfo.InvariantCulture);
        var seconds = double.Parse(Args.Value(args, "--seconds") ?? "60", CultureInfo.InvariantCulture);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = count + 10, UseProxy = false, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        using var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        long events = 0;
        var connected = 0;
        var errors = 0;
        string? firstError = null;
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                request.Headers.TryAddWithoutValidation("Cookie", cookie);
                request.Headers.Accept.ParseAdd("text/event-stream");
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stop.Token);
                if (!response.IsSuccessStatusCode)
                {
                    throw new HttpRequestException($"{(int)response.StatusCode}");
                }
                Interlocked.Increment(ref connected);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(stop.Token));
                while (await reader.ReadLineAsync(stop.Token) is { } line)
                {
                    if (line.StartsWith("event:", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref events);
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                if (Interlocked.Increment(ref errors) == 1)
                {
                    firstError = ex.Message;
                }
            }
        }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"BENCH watchers={count} connected={connected} events={events} errors={errors}"));
        if (firstError is not null)
        {
            Console.WriteLine("BENCH_FIRST_ERROR " + firstError);
        }
        return 0;
    }
}
