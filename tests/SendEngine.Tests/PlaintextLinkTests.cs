using System.Net;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace SendEngine.Tests;

/// <summary>Issue 11 part 5: no working link token or URL is stored in plaintext.</summary>
public sealed class PlaintextLinkTests(StackFixture stack)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_click_on_an_unsubscribe_link_is_stored_without_its_token()
    {
        const string secret = "url-secret-token-0123456789";
        var db = await stack.CreateSendEngineDatabaseAsync();
        await using var engine = stack.CreateSendEngine(db, new Dictionary<string, string?>
        {
            ["TencentSes:Webhook:Verification"] = "Token",
            ["TencentSes:Webhook:SecretToken"] = secret,
            ["EmailEvents:ProcessorEnabled"] = "false",
        });
        using var hook = engine.CreateClient();
        const string token = "u1.Xy3_ab-Q.1764590000.0193a1b2c3d4e5f60718293a4b5c6d7e.0193a1b2c3d47a8b9c0d1e2f3a4b5c6d.5h24o_cTjx8Sm9BDISy2rQ";
        var link = "http://localhost:7850/newsletter/unsubscribe?token=" + token;
        var tenantLink = "https://shop.example/newsletter/offer?token=short&x=1";
        foreach (var (n, l) in new[] { (1, link), (2, tenantLink) })
        {
            var body = JsonSerializer.Serialize(new { @event = "click", email = "a@example.com", bulkId = "b", timestamp = 1654064683 + n, link = l });
            using var response = await hook.PostAsync("api/tencent/ses/webhook?token=" + secret, new StringContent(body, Encoding.UTF8, "application/json"), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        // A repeated callback of the same click is still recognised as one.
        using (var again = await hook.PostAsync("api/tencent/ses/webhook?token=" + secret, new StringContent(
            JsonSerializer.Serialize(new { @event = "click", email = "a@example.com", bulkId = "b", timestamp = 1654064684, link }), Encoding.UTF8, "application/json"), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        await using var conn = new NpgsqlConnection(db);
        await conn.OpenAsync(Ct);
        await using var cmd = new NpgsqlCommand("SELECT link, payload FROM email_events ORDER BY id", conn);
        await using var reader = await cmd.ExecuteReaderAsync(Ct);
        var rows = new List<(string Link, string Payload)>();
        while (await reader.ReadAsync(Ct))
        {
            rows.Add((reader.GetString(0), reader.GetString(1)));
        }
        Assert.Equal(2, rows.Count);
        Assert.Equal("http://localhost:7850/newsletter/unsubscribe?token=redacted", rows[0].Link);
        Assert.DoesNotContain(token, rows[0].Payload);
        Assert.Contains("redacted", rows[0].Payload);
        Assert.Equal(tenantLink, rows[1].Link); // a short value is no token of ours
    }
}
