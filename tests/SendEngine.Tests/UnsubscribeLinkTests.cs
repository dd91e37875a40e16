using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using SendEngine.Composition;
using SendEngine.Features.MemberCenter;
using McDb = global::MemberCenter.Data.MemberCenterDbContext;
using McLinkKey = global::MemberCenter.Features.Subscriptions.LinkKey;
using McLinkKeyProtector = global::MemberCenter.Features.Subscriptions.LinkKeyProtector;
using McLinkKeyRing = global::MemberCenter.Features.Subscriptions.LinkKeyRing;
using McStatus = global::MemberCenter.Features.Subscriptions.SubscriptionStatus;

namespace SendEngine.Tests;

/// <summary>
/// Links minted by Send Engine's <see cref="UnsubscribeLinks"/> with the derived key from Member Center's link-key route
/// work at the real Member Center (page, form, one-click), and forged, foreign, expired or retired ones change nothing.
/// </summary>
public sealed class UnsubscribeLinkTests(StackFixture stack)
{
    private static readonly FormUrlEncodedContent OneClick = new(new Dictionary<string, string> { ["List-Unsubscribe"] = "One-Click" });

    private MemberCenterClient Client() => stack.SendEngine.Services.GetRequiredService<MemberCenterClient>();

    private async Task<T> WithMcDbAsync<T>(Func<McDb, Task<T>> query)
    {
        await using var scope = stack.MemberCenter.Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<McDb>());
    }

    private async Task<(TestTenant Tenant, Dictionary<string, Guid> Subscribers)> TenantWithAsync(int count)
    {
        var tenant = await stack.CreateTenantAsync();
        var emails = Enumerable.Range(0, count).Select(i => $"r{i}@{StackFixture.UniqueDomain()}").ToList();
        await stack.SubscribeAsync(tenant, emails);
        var ids = await WithMcDbAsync(db => db.Subscribers.Where(p => p.TenantId == Guid.Parse(tenant.TenantId)).ToDictionaryAsync(p => p.Email, p => p.Id));
        return (tenant, ids);
    }

    private Task<McStatus> StatusAsync(TestTenant t, Guid subscriberId) =>
        WithMcDbAsync(db => db.Subscriptions.Where(s => s.ListId == Guid.Parse(t.ListId) && s.SubscriberId == subscriberId).Select(s => s.Status).SingleAsync());

    private Task<int> ConsentCountAsync(TestTenant t) =>
        WithMcDbAsync(db => db.ConsentRecords.CountAsync(c => c.TenantId == Guid.Parse(t.TenantId)));

    [Fact]
    public async Task A_link_minted_by_Send_Engine_unsubscribes_by_one_click_and_by_the_page()
    {
        var (t, subscribers) = await TenantWithAsync(2);
        var (tenantId, listId) = (Guid.Parse(t.TenantId), Guid.Parse(t.ListId));
        var key = await Client().GetLinkKeyAsync(tenantId, listId, null, null, TestContext.Current.CancellationToken);
        var links = new UnsubscribeLinks(key);
        var (first, second) = (subscribers.Values.First(), subscribers.Values.Last());
        var snapshot = await Client().GetRecipientsAsync(tenantId, listId, null, TestContext.Current.CancellationToken);
        Assert.NotNull(snapshot.ChangesCursor);

        // A restarted Send Engine gets the same key back from key_id and issued_at.
        var again = await Client().GetLinkKeyAsync(tenantId, listId, key.KeyId, DateTimeOffset.FromUnixTimeSeconds(key.IssuedAt), TestContext.Current.CancellationToken);
        Assert.Equal(key.Key, again.Key);
        Assert.Equal(links.UrlFor(listId, first), new UnsubscribeLinks(again).UrlFor(listId, first));
        Assert.StartsWith(stack.MemberCenterUrl + "/newsletter/unsubscribe?token=u1.", links.UrlFor(listId, first));

        using var http = new HttpClient();
        using (var response = await http.PostAsync(links.UrlFor(listId, first), OneClick))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.Equal(McStatus.Unsubscribed, await StatusAsync(t, first));

        var url = links.UrlFor(listId, second);
        using (var page = await http.GetAsync(url))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("<form method=\"post\" action=\"/newsletter/unsubscribe\">", await page.Content.ReadAsStringAsync());
        }
        var token = url[(url.IndexOf("token=", StringComparison.Ordinal) + 6)..];
        using (var form = await http.PostAsync(stack.MemberCenterUrl + "/newsletter/unsubscribe", new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token })))
        {
            Assert.Equal(HttpStatusCode.OK, form.StatusCode);
            Assert.Contains("You are unsubscribed", await form.Content.ReadAsStringAsync());
        }
        Assert.Equal(McStatus.Unsubscribed, await StatusAsync(t, second));
        // Both show up in the change feed after the snapshot's cursor, in the order they happened.
        var changes = await Client().GetChangesAsync(tenantId, listId, snapshot.ChangesCursor, TestContext.Current.CancellationToken);
        Assert.Equal([(first.ToString(), "unsubscribed"), (second.ToString(), "unsubscribed")], changes.Items.Select(c => (c.SubscriberId, c.Change)));
        Assert.Empty((await Client().GetChangesAsync(tenantId, listId, changes.NextCursor, TestContext.Current.CancellationToken)).Items);
        var trail = await WithMcDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == tenantId && c.Action == "unsubscribe").Select(c => c.Source).OrderBy(s => s).ToListAsync());
        Assert.Equal(["link", "one_click"], trail);
    }

    [Fact]
    public async Task Tampered_foreign_expired_and_retired_links_are_refused_and_change_nothing()
    {
        var (t, subscribers) = await TenantWithAsync(1);
        var (tenantId, listId) = (Guid.Parse(t.TenantId), Guid.Parse(t.ListId));
        var subscriber = subscribers.Values.Single();
        var other = await stack.CreateTenantAsync(); // a list of another tenant
        // A second list of the same tenant, which the subscriber is on too.
        using var admin = stack.MemberCenterAdminClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var second = await StackFixture.PostAsync<MailingListResponse>(admin, $"admin/tenants/{t.TenantId}/lists", new CreateListRequest("Second"));
        await stack.SubscribeAsync(t with { ListId = second.ListId }, [subscribers.Keys.Single()]);
        var key = await Client().GetLinkKeyAsync(tenantId, listId, null, null, TestContext.Current.CancellationToken);
        var url = new UnsubscribeLinks(key).UrlFor(listId, subscriber);

        var tampered = url[..^1] + (url[^1] == 'A' ? 'B' : 'A');
        var otherList = url.Replace($".{listId:N}.", $".{Guid.Parse(second.ListId):N}.", StringComparison.Ordinal);
        Assert.NotEqual(url, otherList);
        // The other list's own key does not make a link for a subscriber of this list either.
        var otherKey = await Client().GetLinkKeyAsync(Guid.Parse(other.TenantId), Guid.Parse(other.ListId), null, null, TestContext.Current.CancellationToken);
        var otherListsKey = new UnsubscribeLinks(otherKey).UrlFor(Guid.Parse(other.ListId), subscriber);

        // An old key (created 100 days ago, signed until 50 days ago): a link it issued 70 days ago has expired.
        var old = await AddKeyAsync(DateTimeOffset.UtcNow.AddDays(-100), DateTimeOffset.UtcNow.AddDays(-50));
        var expired = LinkFrom(old, tenantId, listId, DateTimeOffset.UtcNow.AddDays(-70).ToUnixTimeSeconds(), subscriber);
        // A key retired (deleted) after it signed a link that would otherwise still be valid.
        var doomed = await AddKeyAsync(DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(20));
        var issued = DateTimeOffset.UtcNow.AddDays(-5).ToUnixTimeSeconds();
        var retired = LinkFrom(doomed, tenantId, listId, issued, subscriber);
        await RetireAsync(doomed.Id);

        var consent = await ConsentCountAsync(t);
        using var http = new HttpClient();
        foreach (var (what, bad) in new[] { ("tampered", tampered), ("other list", otherList), ("other list's key", otherListsKey), ("expired", expired), ("retired", retired) })
        {
            using (var page = await http.GetAsync(bad))
            {
                Assert.True(page.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone, $"{what}: page answered {(int)page.StatusCode}");
                Assert.DoesNotContain("<form", await page.Content.ReadAsStringAsync());
            }
            using (var oneClick = await http.PostAsync(bad, OneClick))
            {
                Assert.True(oneClick.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone, $"{what}: one-click answered {(int)oneClick.StatusCode}");
            }
            var token = bad[(bad.IndexOf("token=", StringComparison.Ordinal) + 6)..];
            using (var form = await http.PostAsync(stack.MemberCenterUrl + "/newsletter/unsubscribe", new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token })))
            {
                Assert.True(form.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone, $"{what}: form answered {(int)form.StatusCode}");
            }
        }
        using (var expiredOneClick = await http.PostAsync(expired, OneClick))
        {
            Assert.Equal(HttpStatusCode.Gone, expiredOneClick.StatusCode); // genuine but past its lifetime
        }
        Assert.Equal(McStatus.Confirmed, await StatusAsync(t, subscriber));
        Assert.Equal(McStatus.Confirmed, await StatusAsync(t with { ListId = second.ListId }, subscriber));
        Assert.Equal(consent, await ConsentCountAsync(t));

        // The route will not hand out a retired key again, nor one whose links would already be expired.
        var gone = await Assert.ThrowsAsync<MemberCenterException>(() => Client().GetLinkKeyAsync(tenantId, listId, doomed.Id, DateTimeOffset.FromUnixTimeSeconds(issued), TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.Gone, gone.Status);
        gone = await Assert.ThrowsAsync<MemberCenterException>(() => Client().GetLinkKeyAsync(tenantId, listId, old.Id, DateTimeOffset.UtcNow.AddDays(-70), TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.Gone, gone.Status);
        // Another tenant's list is a 404.
        var foreign = await Assert.ThrowsAsync<MemberCenterException>(() => Client().GetLinkKeyAsync(tenantId, Guid.Parse(other.ListId), null, null, TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.NotFound, foreign.Status);
        // The good link still works.
        using (var ok = await http.PostAsync(url, OneClick))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
    }

    [Fact]
    public async Task Creating_a_job_writes_nothing_in_Member_Center()
    {
        var (t, _) = await TenantWithAsync(2);
        var listId = Guid.Parse(t.ListId);
        // This tenant's rows only: other tests write to the same Member Center meanwhile.
        var counts = () => WithMcDbAsync(async db => (
            Tokens: await db.SubscriptionTokens.CountAsync(k => db.Subscriptions.Any(s => s.Id == k.SubscriptionId && s.ListId == listId)),
            Consent: await db.ConsentRecords.CountAsync(c => c.TenantId == Guid.Parse(t.TenantId)),
            Updated: await db.Subscriptions.Where(s => s.ListId == listId).MaxAsync(s => s.UpdatedAt)));
        var before = await counts();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(t));
        var job = new CreateSendJobRequest(t.TenantId, t.ListId, "n", "Subject", "<p>hi</p>", "hi", DateTimeOffset.UtcNow.AddDays(30).ToString("O"));
        using (var created = await se.PostAsJsonAsync("api/send-jobs", job, StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }
        Assert.Equal(before, await counts());

        // A list of another tenant is still refused.
        var other = await stack.CreateTenantAsync();
        using var foreign = await se.PostAsJsonAsync("api/send-jobs", job with { ListId = other.ListId }, StackFixture.Json);
        Assert.True(foreign.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.UnprocessableEntity or HttpStatusCode.BadRequest, $"{(int)foreign.StatusCode}");
    }

    private async Task<McLinkKeyRing.Key> AddKeyAsync(DateTimeOffset createdAt, DateTimeOffset signsUntil)
    {
        var services = stack.MemberCenter.Services;
        var id = Base64Url.EncodeToString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
        var secret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var created = DateTimeOffset.FromUnixTimeSeconds(createdAt.ToUnixTimeSeconds());
        await WithMcDbAsync(async db =>
        {
            db.LinkKeys.Add(new McLinkKey
            {
                Id = id,
                ProtectedSecret = services.GetRequiredService<McLinkKeyProtector>().Protect(id, secret),
                CreatedAt = created,
                SignsUntil = signsUntil,
                RetireAt = signsUntil.AddDays(60),
            });
            return await db.SaveChangesAsync();
        });
        var ring = services.GetRequiredService<McLinkKeyRing>();
        await ring.RefreshAsync(TestContext.Current.CancellationToken);
        return ring.Keys.Single(k => k.Id == id);
    }

    private async Task RetireAsync(string keyId)
    {
        await WithMcDbAsync(db => db.LinkKeys.Where(k => k.Id == keyId).ExecuteUpdateAsync(u => u.SetProperty(k => k.RetireAt, DateTimeOffset.UtcNow.AddSeconds(-1))));
        await stack.MemberCenter.Services.GetRequiredService<McLinkKeyRing>().RefreshAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, await WithMcDbAsync(db => db.LinkKeys.CountAsync(k => k.Id == keyId)));
    }

    /// <summary>A link minted by Send Engine's class with a key derived from <paramref name="key"/> at <paramref name="issuedAt"/>.</summary>
    private string LinkFrom(McLinkKeyRing.Key key, Guid tenantId, Guid listId, long issuedAt, Guid subscriberId) =>
        new UnsubscribeLinks(new LinkKeyResponse(key.Id, issuedAt, Base64Url.EncodeToString(key.DeriveLinkKey(tenantId, listId, issuedAt)),
            stack.MemberCenterUrl + "/newsletter/unsubscribe?token=", listId.ToString(), DateTimeOffset.FromUnixTimeSeconds(issuedAt).AddDays(60)))
            .UrlFor(listId, subscriberId);
}
