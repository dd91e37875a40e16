using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using Newsletter.Contracts;

namespace SendEngine.Tests;

public sealed class AuthAndApiTests(StackFixture stack)
{
    private static CreateSendJobRequest Valid(TestTenant t, string? tenantId = null) =>
        new(tenantId ?? t.TenantId, t.ListId, "n", "Subject", "<p>hi</p>", "hi", DateTimeOffset.UtcNow.AddDays(30).ToString("O"));

    private async Task<HttpResponseMessage> PostJobAsync(string? bearer, object body, string? idempotencyKey = null)
    {
        using var se = stack.SendEngineClient(bearer);
        if (idempotencyKey is not null)
        {
            se.DefaultRequestHeaders.Add("Idempotency-Key", idempotencyKey);
        }
        return await se.PostAsJsonAsync("api/send-jobs", body, StackFixture.Json);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal((int)status, JsonDocument.Parse(body).RootElement.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Missing_or_invalid_tokens_are_401_with_a_challenge()
    {
        var tenant = await stack.CreateTenantAsync();
        var forge = new TokenForge(stack);
        var key = await forge.MemberCenterKeyAsync();
        var cases = new Dictionary<string, string?>
        {
            ["none"] = null,
            ["garbage"] = "not-a-jwt",
            ["bad signature (a stranger's key)"] = forge.Mint(TokenForge.StrangerKey(), tenant.TenantId),
            ["wrong issuer"] = forge.Mint(key, tenant.TenantId, issuer: "http://evil.example/"),
            ["wrong audience"] = forge.Mint(key, tenant.TenantId, audience: Audiences.MemberCenterApi),
            ["expired"] = forge.Mint(key, tenant.TenantId, expires: DateTime.UtcNow.AddMinutes(-10)),
            ["expired beyond the 30 s skew"] = forge.Mint(key, tenant.TenantId, expires: DateTime.UtcNow.AddSeconds(-45)),
            // A real Member Center token for the tenant API: right issuer and signature, wrong audience.
            ["tenant_api token"] = await stack.TokenAsync(tenant.TenantClientId, tenant.TenantClientSecret, Scopes.SubscriptionsWrite),
            // Pinned algorithm, key and type (RFC 9068), each wrong alone:
            ["alg: none, naming the real kid"] = TokenForge.Unsigned(forge.Mint(key, tenant.TenantId)),
            ["HS256 keyed with the public key"] = forge.Mint(key, tenant.TenantId, tweak: d => d.SigningCredentials = TokenForge.PublicKeyAsHmacSecret(key)),
            ["a stranger's key under the real kid"] = forge.Mint(key, tenant.TenantId, tweak: d =>
                d.SigningCredentials = new SigningCredentials(new RsaSecurityKey(RSA.Create(2048)) { KeyId = key.Key.KeyId }, SecurityAlgorithms.RsaSha256)),
            ["a stranger's key without a kid"] = forge.Mint(key, tenant.TenantId, tweak: d =>
                d.SigningCredentials = new SigningCredentials(new RsaSecurityKey(RSA.Create(2048)), SecurityAlgorithms.RsaSha256)),
            ["typ: JWT"] = forge.Mint(key, tenant.TenantId, tweak: d => d.TokenType = "JWT"),
            // OpenIddict's own type check takes this (its 1.x/2.x tokens); the pin does not.
            ["typ: JWT with token_usage: access_token"] = forge.Mint(key, tenant.TenantId, tweak: d =>
            {
                d.TokenType = "JWT";
                d.Claims["token_usage"] = "access_token";
            }),
            ["nbf in the future"] = forge.Mint(key, tenant.TenantId, expires: DateTime.UtcNow.AddMinutes(30), tweak: d =>
            {
                d.IssuedAt = DateTime.UtcNow;
                d.NotBefore = DateTime.UtcNow.AddMinutes(10);
            }),
        };
        foreach (var (name, token) in cases)
        {
            using var response = await PostJobAsync(token, Valid(tenant));
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        }
        // Control: the same forge with nothing wrong is accepted, also with the media-type spelling of the type.
        using var ok = await PostJobAsync(forge.Mint(key, tenant.TenantId), Valid(tenant));
        Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
        using var mediaType = await PostJobAsync(forge.Mint(key, tenant.TenantId, tweak: d => d.TokenType = "application/at+jwt"), Valid(tenant));
        Assert.Equal(HttpStatusCode.Created, mediaType.StatusCode);
        // nbf within the skew passes (clocks of the two services may differ a little).
        using var nbfSkewed = await PostJobAsync(forge.Mint(key, tenant.TenantId, tweak: d =>
        {
            d.IssuedAt = DateTime.UtcNow;
            d.NotBefore = DateTime.UtcNow.AddSeconds(10);
        }), Valid(tenant));
        Assert.Equal(HttpStatusCode.Created, nbfSkewed.StatusCode);
        // Within the skew a just-expired token still passes (clocks of the two services may differ a little).
        using var skewed = await PostJobAsync(forge.Mint(key, tenant.TenantId, expires: DateTime.UtcNow.AddSeconds(-10)), Valid(tenant));
        Assert.Equal(HttpStatusCode.Created, skewed.StatusCode);
    }

    [Fact]
    public async Task Scope_and_tenant_are_enforced()
    {
        var tenant = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync("Other");
        var forge = new TokenForge(stack);
        var key = await forge.MemberCenterKeyAsync();

        using (var noTenant = await PostJobAsync(forge.Mint(key, null), Valid(tenant)))
        {
            await AssertProblemAsync(noTenant, HttpStatusCode.Forbidden);
        }
        var readOnly = await stack.SendTokenAsync(tenant, Scopes.SendRead);
        using (var wrongScope = await PostJobAsync(readOnly, Valid(tenant)))
        {
            await AssertProblemAsync(wrongScope, HttpStatusCode.Forbidden);
        }
        var writeOnly = await stack.SendTokenAsync(tenant, Scopes.SendWrite);
        using (var se = stack.SendEngineClient(writeOnly))
        using (var list = await se.GetAsync("api/send-jobs"))
        {
            await AssertProblemAsync(list, HttpStatusCode.Forbidden);
        }

        var token = await stack.SendTokenAsync(tenant);
        using (var otherTenantBody = await PostJobAsync(token, Valid(tenant, other.TenantId)))
        {
            await AssertProblemAsync(otherTenantBody, HttpStatusCode.Forbidden);
        }
        using (var otherList = await PostJobAsync(token, Valid(tenant) with { ListId = other.ListId }))
        {
            await AssertProblemAsync(otherList, HttpStatusCode.NotFound);
        }

        // Another tenant's job is a 404 on every route.
        using var created = await PostJobAsync(await stack.SendTokenAsync(other), Valid(other));
        var job = await StackFixture.ReadAsync<SendJobResponse>(created, HttpStatusCode.Created);
        using var mine = stack.SendEngineClient(token);
        foreach (var request in new Func<Task<HttpResponseMessage>>[]
                 {
                     () => mine.GetAsync($"api/send-jobs/{job.Id}"),
                     () => mine.GetAsync($"api/send-jobs/{job.Id}/recipients"),
                     () => mine.PostAsync($"api/send-jobs/{job.Id}/cancel", null),
                     () => mine.GetAsync($"api/send-jobs/{Guid.NewGuid()}"),
                 })
        {
            using var response = await request();
            await AssertProblemAsync(response, HttpStatusCode.NotFound);
        }
        var page = await mine.GetFromJsonAsync<SendJobPage>("api/send-jobs", StackFixture.Json);
        Assert.DoesNotContain(page!.Items, j => j.Id == job.Id);
    }

    [Fact]
    public async Task A_rotated_signing_key_is_picked_up_without_restart()
    {
        // A Send Engine of its own, so that its JWKS cache has seen only the current key.
        await using var fresh = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync());
        var tenant = await stack.CreateTenantAsync();
        async Task<HttpResponseMessage> Post(string token)
        {
            using var se = fresh.CreateClient();
            se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await se.PostAsJsonAsync("api/send-jobs", Valid(tenant), StackFixture.Json);
        }
        using (var before = await Post(await stack.SendTokenAsync(tenant)))
        {
            Assert.Equal(HttpStatusCode.Created, before.StatusCode);
        }
        // A forged kid just before the rotation makes Send Engine fetch the JWKS; that fetch must not keep the
        // rotated key out for the throttle interval.
        using (var forged = await Post(new TokenForge(stack).Mint(TokenForge.StrangerKey(), tenant.TenantId)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        }
        using var admin = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        using (var rotate = await admin.PostAsync("admin/signing-keys/rotate?immediately=true", null))
        {
            Assert.Equal(HttpStatusCode.Created, rotate.StatusCode);
        }
        var token = await stack.SendTokenAsync(tenant);
        var kid = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[0])).RootElement.GetProperty("kid").GetString();
        var newest = JsonDocument.Parse(await admin.GetStringAsync("admin/signing-keys")).RootElement.EnumerateArray()
            .Where(k => k.GetProperty("state").GetString() == "signing").Select(k => k.GetProperty("key_id").GetString()).ToList();
        Assert.Contains(kid, newest);
        using var after = await Post(token);
        Assert.True(after.StatusCode == HttpStatusCode.Created, $"{(int)after.StatusCode} {after.Headers.WwwAuthenticate}");
    }

    [Fact]
    public async Task A_revoked_signing_key_is_refused_within_the_JWKS_refresh_interval_and_a_rotated_one_is_not()
    {
        var ct = TestContext.Current.CancellationToken;
        // A Member Center and a Send Engine of their own: revoking the shared stack's key would break the other tests.
        await using var mc = await RestartableMemberCenter.StartAsync(stack, await stack.Postgres.CreateDatabaseAsync("mc"));
        var interval = TimeSpan.FromSeconds(2);
        await using var se = new SendEngineFactory(mc.SendEngineSettings(stack, await stack.CreateSendEngineDatabaseAsync(),
            new Dictionary<string, string?> { ["Auth:JwksRefreshInterval"] = "00:00:02" }));
        using var admin = mc.Client(await mc.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var tenant = await StackFixture.PostAsync<TenantResponse>(admin, "admin/tenants", new CreateTenantRequest("Revocation"));
        var client = await StackFixture.PostAsync<ApiClientSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/clients",
            new CreateClientRequest(ClientUsages.SendApi, "sender"));
        Task<string> SendToken() => mc.TokenAsync(client.ClientId, client.ClientSecret, Scopes.SendWrite + " " + Scopes.SendRead);
        async Task<HttpStatusCode> ListJobs(string token)
        {
            using var http = se.CreateClient();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.GetAsync("api/send-jobs", ct);
            return response.StatusCode;
        }
        static string Kid(string token) => new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(token).Kid;

        var first = await SendToken();
        Assert.Equal(HttpStatusCode.OK, await ListJobs(first));

        // Rotated at once: the new key signs; the old one stays published for its tokens, which pass across refreshes.
        using (var rotate = await admin.PostAsync("admin/signing-keys/rotate?immediately=true", null, ct))
        {
            Assert.Equal(HttpStatusCode.Created, rotate.StatusCode);
        }
        var second = await SendToken();
        Assert.NotEqual(Kid(first), Kid(second));
        Assert.Equal(HttpStatusCode.OK, await ListJobs(second));
        await Task.Delay(interval * 2, ct);
        Assert.Equal(HttpStatusCode.OK, await ListJobs(first));

        // Revoked: its tokens are refused once Send Engine next reads the JWKS; the other key's tokens still pass.
        var clock = Stopwatch.StartNew();
        using (var revoke = await admin.PostAsync($"admin/signing-keys/{Kid(first)}/revoke", null, ct))
        {
            Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        }
        var status = HttpStatusCode.OK;
        while (status == HttpStatusCode.OK && clock.Elapsed < interval + TimeSpan.FromSeconds(20))
        {
            await Task.Delay(100, ct);
            status = await ListJobs(first);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        // The interval, plus a margin for a loaded machine.
        Assert.True(clock.Elapsed < interval + TimeSpan.FromSeconds(6), $"refused only after {clock.Elapsed}");
        Assert.Equal(HttpStatusCode.OK, await ListJobs(second));
        Assert.Equal(HttpStatusCode.OK, await ListJobs(await SendToken()));
    }

    [Fact]
    public async Task Create_validates_fields_as_snake_case_problem_details()
    {
        var tenant = await stack.CreateTenantAsync();
        var token = await stack.SendTokenAsync(tenant);
        using var response = await PostJobAsync(token, new CreateSendJobRequest(null, "not-a-uuid", null, " ", null, null, "2026-02-11T02:00:00"));
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        var errors = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        foreach (var field in new[] { "list_id", "subject", "body_html", "body_text", "scheduled_at" })
        {
            Assert.True(errors.TryGetProperty(field, out _), $"no error for {field}: {errors}");
        }
        using var missing = await PostJobAsync(token, new CreateSendJobRequest(null, null, null, "s", null, "t", null));
        await AssertProblemAsync(missing, HttpStatusCode.BadRequest);
        Assert.True(JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").TryGetProperty("list_id", out _));

        using var se = stack.SendEngineClient(token);
        using var malformed = await se.PostAsync("api/send-jobs", new StringContent("{\"list_id\": 5", Encoding.UTF8, "application/json"));
        await AssertProblemAsync(malformed, HttpStatusCode.BadRequest);
        using var badLimit = await se.GetAsync("api/send-jobs?limit=0");
        await AssertProblemAsync(badLimit, HttpStatusCode.BadRequest);

        // Text PostgreSQL cannot store (NUL, a lone surrogate) is the caller's 400, in bodies and query values alike.
        foreach (var bad in new[] { "Hi\\u0000", "\\udc00" })
        {
            using var unstorable = await se.PostAsync("api/send-jobs", new StringContent(
                $$"""{"list_id":"{{tenant.ListId}}","subject":"{{bad}}","body_text":"x"}""", Encoding.UTF8, "application/json"));
            await AssertProblemAsync(unstorable, HttpStatusCode.BadRequest);
            Assert.Contains("$.subject", await unstorable.Content.ReadAsStringAsync());
        }
        foreach (var path in new[] { "api/suppressions?after=%00", "api/send-jobs?after=a%00b" })
        {
            using var nul = await se.GetAsync(path);
            await AssertProblemAsync(nul, HttpStatusCode.BadRequest);
        }
    }

    [Fact]
    public async Task Idempotency_key_returns_the_same_job_and_the_list_is_newest_first()
    {
        var tenant = await stack.CreateTenantAsync();
        var token = await stack.SendTokenAsync(tenant);
        var key = Guid.NewGuid().ToString();
        using var first = await PostJobAsync(token, Valid(tenant), key);
        var a = await StackFixture.ReadAsync<SendJobResponse>(first, HttpStatusCode.Created);
        using var retry = await PostJobAsync(token, Valid(tenant), key);
        var b = await StackFixture.ReadAsync<SendJobResponse>(retry, HttpStatusCode.OK);
        Assert.Equal(a.Id, b.Id);
        // The same key for different content is refused, not silently answered with the first job.
        using var reused = await PostJobAsync(token, Valid(tenant) with { Subject = "Something else" }, key);
        await AssertProblemAsync(reused, HttpStatusCode.UnprocessableEntity);
        using var other = await PostJobAsync(token, Valid(tenant));
        var c = await StackFixture.ReadAsync<SendJobResponse>(other, HttpStatusCode.Created);

        using var se = stack.SendEngineClient(token);
        var page = await se.GetFromJsonAsync<SendJobPage>("api/send-jobs?limit=1", StackFixture.Json);
        Assert.Equal(c.Id, Assert.Single(page!.Items).Id);
        var next = await se.GetFromJsonAsync<SendJobPage>($"api/send-jobs?limit=1&after={page.NextCursor}", StackFixture.Json);
        Assert.Equal(a.Id, Assert.Single(next!.Items).Id);

        // A scheduled job can be cancelled before it starts; then it is finished (409).
        using var cancel = await se.PostAsync($"api/send-jobs/{a.Id}/cancel", null);
        Assert.Equal(SendJobStatuses.Cancelled, (await StackFixture.ReadAsync<SendJobResponse>(cancel, HttpStatusCode.OK)).Status);
        using var twice = await se.PostAsync($"api/send-jobs/{a.Id}/cancel", null);
        await AssertProblemAsync(twice, HttpStatusCode.Conflict);
        using var badStatus = await se.GetAsync($"api/send-jobs/{c.Id}/recipients?status=nope");
        await AssertProblemAsync(badStatus, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Hangfire_dashboard_needs_the_operator_credential_and_health_answers()
    {
        using var se = stack.SendEngineClient();
        using var anonymous = await se.GetAsync("hangfire");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Contains(anonymous.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:wrong")));
        using var wrong = await se.GetAsync("hangfire");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        se.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:ops-secret-123")));
        using var ok = await se.GetAsync("hangfire");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        // Processes of their own get databases of their own: on the shared one, their Hangfire workers would take
        // jobs that other tests enqueue (and the orphan's fail for want of Member Center).
        await using var noDashboard = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["Hangfire:DashboardUsername"] = null,
            ["Hangfire:DashboardPassword"] = null,
            ["Hangfire:WorkerCount"] = "1",
        });
        using var plain = noDashboard.CreateClient();
        using var missing = await plain.GetAsync("hangfire");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        using var live = await se.GetAsync("health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var ready = await se.GetAsync("health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        // Swagger: the tenant routes need the bearer token, the webhook (signed instead) does not.
        se.DefaultRequestHeaders.Authorization = StackFixture.ManagementAuthorization;
        var paths = System.Text.Json.JsonDocument.Parse(await se.GetStringAsync("swagger/v1/swagger.json")).RootElement.GetProperty("paths");
        Assert.Equal(1, paths.GetProperty("/api/send-jobs").GetProperty("post").GetProperty("security").GetArrayLength());
        Assert.Equal(1, paths.GetProperty("/api/suppressions").GetProperty("get").GetProperty("security").GetArrayLength());
        Assert.Equal(0, paths.GetProperty("/api/tencent/ses/webhook").GetProperty("post").GetProperty("security").GetArrayLength());

        // Not ready while Member Center cannot be reached (nothing listens on that port); still live.
        await using var orphan = stack.CreateSendEngine(await stack.CreateSendEngineDatabaseAsync(), new Dictionary<string, string?>
        {
            ["MemberCenter:BaseUrl"] = $"http://127.0.0.1:{Newsletter.TestSupport.FreePort.Get()}",
            ["Hangfire:WorkerCount"] = "1",
        });
        using var alone = orphan.CreateClient();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await alone.GetAsync("health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await alone.GetAsync("health/live")).StatusCode);
    }

    [Fact]
    public async Task Suppressions_are_searched_by_address_prefix_reason_and_source_in_keyset_pages()
    {
        var tenant = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        using var otherSe = stack.SendEngineClient(await stack.SendTokenAsync(other));
        foreach (var (email, reason) in new[] { ("Anna@a.example", "manual"), ("anne@a.example", "complaint"), ("anton@b.example", "manual"),
                     ("bert@a.example", "manual"), ("annex@c.example", "hard_bounce") })
        {
            using var added = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, email, reason), StackFixture.Json);
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        }
        using (var foreign = await otherSe.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, "annabel@x.example", "manual"), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Created, foreign.StatusCode);
        }
        async Task<SuppressionPage> Get(string query) => (await se.GetFromJsonAsync<SuppressionPage>("api/suppressions?" + query, StackFixture.Json))!;

        // A prefix (case-insensitive, as addresses are stored lower-cased), in address order, this tenant's only.
        var ann = await Get("email=ANN");
        Assert.Equal(new[] { "anna@a.example", "anne@a.example", "annex@c.example" }, ann.Items.Select(i => i.Email));
        Assert.Null(ann.NextCursor);
        // Keyset pages: two, then the rest after the cursor.
        var first = await Get("email=an&limit=2");
        Assert.Equal(new[] { "anna@a.example", "anne@a.example" }, first.Items.Select(i => i.Email));
        Assert.Equal("anne@a.example", first.NextCursor);
        var second = await Get($"email=an&limit=2&after={Uri.EscapeDataString(first.NextCursor!)}");
        Assert.Equal(new[] { "annex@c.example", "anton@b.example" }, second.Items.Select(i => i.Email));
        Assert.Null(second.NextCursor);
        // Reason and source.
        Assert.Equal(new[] { "anna@a.example", "anton@b.example", "bert@a.example" }, (await Get("reason=manual")).Items.Select(i => i.Email));
        Assert.Equal(new[] { "anna@a.example", "anton@b.example" }, (await Get("reason=manual&email=an")).Items.Select(i => i.Email));
        Assert.Equal(5, (await Get("source=api")).Items.Count);
        Assert.Empty((await Get("source=esp")).Items);
        // Bad filters are the caller's 400 with the field named.
        foreach (var (query, field) in new[] { ("reason=bored", "reason"), ("source=fax", "source"), ("limit=0", "limit"), ("email=" + new string('a', 321), "email") })
        {
            using var bad = await se.GetAsync("api/suppressions?" + query);
            await AssertProblemAsync(bad, HttpStatusCode.BadRequest);
            Assert.True(JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").TryGetProperty(field, out _), query);
        }
    }
}
