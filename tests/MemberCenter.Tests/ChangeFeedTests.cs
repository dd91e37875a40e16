using System.Net;
using System.Net.Http.Json;
using MemberCenter.Data;
using MemberCenter.Features.Subscriptions;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>GET /internal/lists/{id}/changes: what stopped being sendable since a snapshot, in commit order.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class ChangeFeedTests(MemberCenterFixture mc)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<HttpClient> SendEngineAsync() =>
        mc.Http(await mc.TokenAsync(MemberCenterFixture.SendEngineClientId, MemberCenterFixture.SendEngineClientSecret));

    private static async Task<SubscriptionChangesPage> ChangesAsync(HttpClient se, TestTenant t, string after) =>
        await MemberCenterFixture.ReadAsync<SubscriptionChangesPage>(await se.GetAsync($"internal/lists/{t.ListId}/changes?tenant_id={t.TenantId}&after={after}", Ct));

    [Fact]
    public async Task Unsubscribes_and_bounces_after_the_snapshot_cursor_are_listed_once_in_order()
    {
        var tenant = await mc.CreateTenantAsync();
        var emails = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var email = $"c{i}-{Guid.NewGuid():N}@example.com";
            await tenant.ConfirmAsync((await tenant.SubscribeAsync(email)).ConfirmToken!);
            emails.Add(email);
        }
        using var se = await SendEngineAsync();
        // Left before the snapshot: not in the feed after its cursor.
        using (await se.PostAsJsonAsync("internal/suppressions", new { tenant_id = tenant.TenantId, email = emails[3], reason = "unsubscribe", list_id = tenant.ListId }, Ct))
        {
        }
        var first = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}&limit=2", MemberCenterFixture.Json, Ct);
        Assert.NotNull(first!.ChangesCursor);
        var second = await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}&limit=2&after={first.NextCursor}", MemberCenterFixture.Json, Ct);
        Assert.Null(second!.ChangesCursor);
        Assert.Empty((await ChangesAsync(se, tenant, first.ChangesCursor)).Items);

        using var http = mc.Http();
        var url = (await LinkKeyMinter.MintAsync(se, tenant.TenantId, tenant.ListId, Ct))(first.Items.Single(r => r.Email == emails[0]).SubscriberId);
        using (var left = await http.PostAsync(url, new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, left.StatusCode);
        }
        using (var again = await http.PostAsync(url, new FormUrlEncodedContent(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" }), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode); // idempotent: no second change
        }
        (await se.PostAsJsonAsync("internal/suppressions", new { tenant_id = tenant.TenantId, email = emails[1], reason = "hard_bounce" }, Ct)).EnsureSuccessStatusCode();
        (await se.PostAsJsonAsync("internal/suppressions", new { tenant_id = tenant.TenantId, email = emails[2], reason = "complaint" }, Ct)).EnsureSuccessStatusCode();

        var feed = await ChangesAsync(se, tenant, first.ChangesCursor);
        Assert.Equal([(emails[0], "unsubscribed"), (emails[1], "undeliverable"), (emails[2], "unsubscribed")],
            feed.Items.Select(c => (c.Email!, c.Change)));
        Assert.Equal(first.Items.Single(r => r.Email == emails[0]).SubscriberId, feed.Items[0].SubscriberId);
        Assert.Empty((await ChangesAsync(se, tenant, feed.NextCursor)).Items);
        Assert.Equal(feed.NextCursor, (await ChangesAsync(se, tenant, feed.NextCursor)).NextCursor);

        var other = await mc.CreateTenantAsync();
        using (var foreign = await se.GetAsync($"internal/lists/{tenant.ListId}/changes?tenant_id={other.TenantId}&after=0", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }
        using (var bad = await se.GetAsync($"internal/lists/{tenant.ListId}/changes?tenant_id={tenant.TenantId}&after=x", Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
    }

    [Fact]
    public async Task A_change_committed_after_a_later_one_was_written_is_never_skipped()
    {
        var tenant = await mc.CreateTenantAsync();
        var otherList = await mc.CreateTenantAsync();
        var listId = Guid.Parse(tenant.ListId);
        using var se = await SendEngineAsync();
        var start = (await se.GetFromJsonAsync<RecipientPage>($"internal/lists/{tenant.ListId}/recipients?tenant_id={tenant.TenantId}", MemberCenterFixture.Json, Ct))!.ChangesCursor!;
        var (a, b) = (Guid.CreateVersion7(), Guid.CreateVersion7());

        // Writer A records a change and keeps its transaction open.
        await using var scopeA = mc.Services.CreateAsyncScope();
        var dbA = scopeA.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
        await using var txA = await dbA.Database.BeginTransactionAsync(Ct);
        await SubscriptionChanges.RecordAsync(dbA, [(listId, a, SubscriptionChangeKinds.Unsubscribed, DateTimeOffset.UtcNow)], Ct);

        // Writer B, on the same list, starts after A: with a bare sequence it would take a higher id and could commit
        // first, and a reader's cursor at B would skip A for good. B has to wait for A instead.
        var bRecorded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bCommit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writerB = Task.Run(async () =>
        {
            await using var scope = mc.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            await using var tx = await db.Database.BeginTransactionAsync(Ct);
            await SubscriptionChanges.RecordAsync(db, [(listId, b, SubscriptionChangeKinds.Unsubscribed, DateTimeOffset.UtcNow)], Ct);
            bRecorded.SetResult();
            await bCommit.Task;
            await tx.CommitAsync(Ct);
        }, Ct);
        Assert.NotSame(bRecorded.Task, await Task.WhenAny(bRecorded.Task, Task.Delay(1500, Ct)));

        // Another list is not held up by A.
        await using (var scopeC = mc.Services.CreateAsyncScope())
        {
            var dbC = scopeC.ServiceProvider.GetRequiredService<MemberCenterDbContext>();
            await using var txC = await dbC.Database.BeginTransactionAsync(Ct);
            var other = SubscriptionChanges.RecordAsync(dbC, [(Guid.Parse(otherList.ListId), b, SubscriptionChangeKinds.Unsubscribed, DateTimeOffset.UtcNow)], Ct);
            Assert.Same(other, await Task.WhenAny(other, Task.Delay(10_000, Ct)));
            await txC.CommitAsync(Ct);
        }

        Assert.Empty((await ChangesAsync(se, tenant, start)).Items); // nothing committed yet
        await txA.CommitAsync(Ct);
        await bRecorded.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        // B has written but not committed: a reader now sees A, and its cursor stays below B.
        var seen = await ChangesAsync(se, tenant, start);
        Assert.Equal([a.ToString()], seen.Items.Select(c => c.SubscriberId));
        bCommit.SetResult();
        await writerB.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var later = await ChangesAsync(se, tenant, seen.NextCursor);
        Assert.Equal([b.ToString()], later.Items.Select(c => c.SubscriberId));
    }
}
