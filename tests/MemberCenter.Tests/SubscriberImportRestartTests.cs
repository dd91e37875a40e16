using System.Net;
using System.Text;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>CSV imports with small limits and tiny batches: a stopped host resumes an import, and uploads past the limits are refused.</summary>
[LongRunning(103)]
public sealed class SubscriberImportRestartTests(PostgresServer postgres, MailDevServer mail)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private MemberCenterFixture Configure(MemberCenterFixture mc, string? connectionString = null)
    {
        mc.Settings["Imports:BatchSize"] = "3";
        mc.Settings["Imports:PollInterval"] = "00:00:00.200";
        mc.Settings["Imports:MaxRows"] = "5000";
        mc.Settings["Imports:MaxBytes"] = "200000";
        if (connectionString is not null)
        {
            mc.Settings["ConnectionStrings:MemberCenter"] = connectionString;
        }
        return mc;
    }

    [Fact]
    public async Task An_import_cut_short_by_a_stopped_host_resumes_on_the_next_start_and_applies_no_row_twice()
    {
        var first = Configure(new MemberCenterFixture(postgres, mail));
        await first.InitializeAsync();
        var tenant = await first.CreateTenantAsync();
        var csv = new StringBuilder("email\n");
        for (var i = 0; i < 3000; i++)
        {
            csv.Append(FormattableString.Invariant($"r{i:D4}@example.com\n"));
        }
        string importId;
        using (var api = tenant.Api())
        {
            importId = (await SubscriberDirectoryTests.UploadAsync(api, tenant.ListId, csv.ToString())).ImportId;
            await SubscriberDirectoryTests.WaitForImportAsync(api, tenant.ListId, importId, s => s.Processed > 0);
        }
        await ((IAsyncDisposable)first).DisposeAsync();

        var listId = Guid.Parse(tenant.ListId);
        var import = Guid.Parse(importId);
        int appliedBeforeRestart;
        await using (var db = new Npgsql.NpgsqlConnection(first.ConnectionString))
        {
            await db.OpenAsync(Ct);
            await using var count = new Npgsql.NpgsqlCommand("SELECT processed FROM subscriber_imports WHERE id = $1", db) { Parameters = { new() { Value = import } } };
            appliedBeforeRestart = (int)(await count.ExecuteScalarAsync(Ct))!;
        }
        Assert.InRange(appliedBeforeRestart, 1, 2999); // stopped mid-way

        await using var second = Configure(new MemberCenterFixture(postgres, mail), first.ConnectionString);
        await second.InitializeAsync();
        using var api2 = second.Http(await second.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret));
        var done = await SubscriberDirectoryTests.WaitForImportAsync(api2, tenant.ListId, importId);
        Assert.Equal((3000, 3000, 0, 0, 0), (done.Processed, done.Created, done.Updated, done.Skipped, done.Invalid));
        Assert.Equal(3000, await second.WithDbAsync(db => db.Subscriptions.CountAsync(s => s.ListId == listId && s.Status == SubscriptionStatus.Confirmed, Ct)));
        // Each row applied once: one consent record per address, none left staged.
        Assert.Equal(3000, await second.WithDbAsync(db => db.ConsentRecords.CountAsync(c => c.ListId == listId && c.Source == "import", Ct)));
        Assert.Equal(0, await second.WithDbAsync(db => db.SubscriberImportRows.CountAsync(r => r.ImportId == import, Ct)));
    }

    [Fact]
    public async Task Uploads_beyond_the_row_or_byte_limit_are_413_and_leave_nothing_behind()
    {
        await using var mc = Configure(new MemberCenterFixture(postgres, mail));
        await mc.InitializeAsync();
        var tenant = await mc.CreateTenantAsync();
        using var api = tenant.Api();

        var rows = new StringBuilder("email\r\n");
        for (var i = 0; i < 5001; i++)
        {
            rows.Append(FormattableString.Invariant($"n{i}@example.com\r\n"));
        }
        using (var content = new StringContent(rows.ToString(), Encoding.UTF8, "text/csv"))
        using (var tooMany = await api.PostAsync($"api/lists/{tenant.ListId}/imports?mode=double_opt_in", content, Ct))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooMany.StatusCode);
            Assert.Equal("application/problem+json", tooMany.Content.Headers.ContentType?.MediaType);
        }

        // Sent chunked, without a Content-Length: the limit holds while the body is read.
        var big = new StringBuilder("email,note\r\n");
        for (var i = 0; i < 3000; i++)
        {
            big.Append(FormattableString.Invariant($"b{i}@example.com,{new string('x', 80)}\r\n"));
        }
        using (var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big.ToString()))))
        {
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("text/csv");
            using var request = new HttpRequestMessage(HttpMethod.Post, $"api/lists/{tenant.ListId}/imports?mode=confirmed&consent_note=crm") { Content = content };
            request.Headers.TransferEncodingChunked = true;
            using var tooBig = await api.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        }
        using (var content = new ByteArrayContent(Encoding.UTF8.GetBytes(big.ToString())))
        {
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("text/csv");
            using var declared = await api.PostAsync($"api/lists/{tenant.ListId}/imports?mode=confirmed&consent_note=crm", content, Ct);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        }
        Assert.Equal(0, await mc.WithDbAsync(db => db.SubscriberImports.CountAsync(Ct)));
        Assert.Equal(0, await mc.WithDbAsync(db => db.SubscriberImportRows.CountAsync(Ct)));
    }
}
