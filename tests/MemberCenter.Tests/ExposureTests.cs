using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MemberCenter.Features.Outbox;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>Issue 11, part 6 on Member Center: NUL in paths, Swagger off the public listener.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class ExposureTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task A_NUL_in_any_path_segment_is_a_400_problem()
    {
        var tenant = await mc.CreateTenantAsync("Nul");
        using var api = tenant.Api();
        string[] paths = [$"api/lists/{tenant.ListId}%00", "api/lists/%00", "newsletter/confirm%00", "admin/tenants/%00/lists", "internal/lists/a%00b/recipients", "x%00y"];
        foreach (var path in paths)
        {
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Post })
            {
                using var response = await api.SendAsync(new HttpRequestMessage(method, path));
                var body = await response.Content.ReadAsStringAsync();
                // Kestrel refuses a NUL in the path itself, before any middleware (so without a problem body).
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {path}: {(int)response.StatusCode} {body}");
            }
        }
    }

    [Fact]
    public async Task Swagger_on_the_public_listener_needs_the_management_credential()
    {
        using var http = mc.Http();
        foreach (var path in new[] { "swagger/v1/swagger.json", "swagger/index.html" })
        {
            using var anonymous = await http.GetAsync(path);
            Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {(int)anonymous.StatusCode}");
            Assert.Contains(anonymous.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = MemberCenterFixture.ManagementAuthorization;
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(request)).StatusCode);
        }
        // The OAuth endpoints and health stay public.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(".well-known/openid-configuration")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live")).StatusCode);
    }
}

/// <summary>Member Centers of their own: no management credential; an SMTP server that is slow or silent.</summary>
[LongRunning(98)]
public sealed class ExposureIsolatedTests(PostgresServer postgres, MailDevServer mail)
{
    [Fact]
    public async Task Without_a_management_port_or_credential_Swagger_is_404()
    {
        await using var bare = new MemberCenterFixture(postgres, mail);
        bare.Settings["Management:Username"] = null;
        bare.Settings["Management:Password"] = null;
        await bare.InitializeAsync();
        using var http = bare.Http();
        http.DefaultRequestHeaders.Authorization = MemberCenterFixture.ManagementAuthorization;
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("swagger/v1/swagger.json")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("swagger/index.html")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/live")).StatusCode);
    }

    [Fact]
    public async Task A_relay_slower_than_the_lease_gets_each_confirmation_once_from_two_dispatchers()
    {
        // The relay takes each message, then answers the end of DATA only after 12 s: three leases of 4 s (renewed every
        // 1.3 s, so a busy machine has seconds of slack).
        await using var relay = await FaultSmtpServer.StartAsync("--data-delay", "12");
        await using var center = new MemberCenterFixture(postgres, mail);
        center.Settings["Smtp:Host"] = relay.Host;
        center.Settings["Smtp:Port"] = relay.Port.ToString(CultureInfo.InvariantCulture);
        center.Settings["Smtp:DataTimeout"] = "00:00:30";
        center.Settings["Outbox:Lease"] = "00:00:04";
        center.Settings["Outbox:Concurrency"] = "2";
        center.Settings["Outbox:PollInterval"] = "00:00:00.100";
        await center.InitializeAsync();
        var tenant = await center.CreateTenantAsync("Slow relay");
        var email = $"slow-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email);

        OutboxMessage? row = null;
        for (var i = 0; i < 300 && row?.SentAt is null; i++)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
            row = await center.WithDbAsync(db => db.OutboxMessages.AsNoTracking().SingleOrDefaultAsync());
        }
        Assert.True(row?.SentAt is not null, $"the confirmation was not recorded as sent within 30 s: {row?.LastError}");
        // The second dispatcher polled every 100 ms for 12 s; had the lease lapsed, it would have sent its own copy.
        Assert.Equal(1, relay.Accepted.Count(a => a.Recipient == email));
        Assert.Equal(1, row!.Attempts);
    }

    [Fact]
    public async Task A_relay_that_accepts_the_connection_and_never_greets_times_out_after_the_command_timeout()
    {
        // A black hole: TCP connects, no greeting ever comes.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                var socket = await silent.AcceptSocketAsync();
                lock (held)
                {
                    held.Add(socket);
                }
            }
        });
        await using var center = new MemberCenterFixture(postgres, mail);
        center.Settings["Smtp:Host"] = "127.0.0.1";
        center.Settings["Smtp:Port"] = ((IPEndPoint)silent.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
        center.Settings["Smtp:CommandTimeout"] = "00:00:02";
        center.Settings["Smtp:DataTimeout"] = "00:05:00";
        await center.InitializeAsync();
        var tenant = await center.CreateTenantAsync("Black hole");
        await tenant.SubscribeAsync($"hole-{Guid.NewGuid():N}@example.com");

        OutboxMessage? row = null;
        for (var i = 0; i < 200 && row?.LastError is null; i++)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
            row = await center.WithDbAsync(db => db.OutboxMessages.AsNoTracking().SingleOrDefaultAsync());
        }
        // Well before the 5-minute data timeout: the handshake is bounded by the command timeout.
        Assert.True(row?.LastError is not null, "no failure recorded within 20 s");
        Assert.Contains("Smtp:CommandTimeout", row!.LastError);
        Assert.Null(row.CompletedAt); // an outage: retried later, not given up
        silent.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => accepting);
        lock (held)
        {
            held.ForEach(s => s.Dispose());
        }
    }
}
