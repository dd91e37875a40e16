using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>Issue 11 part 4: subscribes cannot flood an address with confirmation mail; the consent trail tells api from link.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class ConfirmationLimitTests(MemberCenterFixture mc)
{
    private static string NewEmail() => $"flood-{Guid.NewGuid():N}@example.com";

    private Task<int> MailsToAsync(string email) => mc.Mail.ListAsync().ContinueWith(t => t.Result.Count(m => m.To.Contains(email)));

    /// <summary>Waits until the address's outbox rows are all done, so the mail count is final.</summary>
    private async Task DrainedAsync(Guid subscriptionId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await mc.WithDbAsync(db => db.OutboxMessages.AnyAsync(m => m.SubscriptionId == subscriptionId && m.CompletedAt == null)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the outbox did not drain");
            await Task.Delay(200);
        }
    }

    /// <summary>Moves the subscription's mail history back in time, as if <paramref name="by"/> had passed.</summary>
    private Task AgeAsync(Guid subscriptionId, TimeSpan by, bool window) => mc.WithDbAsync(db => db.Subscriptions.Where(s => s.Id == subscriptionId)
        .ExecuteUpdateAsync(u => u
            .SetProperty(s => s.ConfirmMailLastAt, s => s.ConfirmMailLastAt - by)
            .SetProperty(s => s.ConfirmMailWindowStart, s => window ? s.ConfirmMailWindowStart - by : s.ConfirmMailWindowStart)));

    [Fact]
    public async Task A_pending_address_gets_one_mail_per_interval_and_five_a_day_and_the_held_back_ones_are_in_the_trail()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        var first = await tenant.SubscribeAsync(email);
        await mc.Mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        var subscriptionId = await mc.WithDbAsync(db => db.Subscriptions.Where(s => s.ListId == Guid.Parse(tenant.ListId)).Select(s => s.Id).SingleAsync());

        // Within the interval: answered as usual (a fresh token for the tenant), but no mail.
        for (var i = 0; i < 3; i++)
        {
            var again = await tenant.SubscribeAsync(email);
            Assert.Equal("pending", again.Status);
            Assert.NotNull(again.ConfirmToken);
            Assert.NotEqual(first.ConfirmToken, again.ConfirmToken);
        }
        await DrainedAsync(subscriptionId);
        Assert.Equal(1, await MailsToAsync(email));

        // Once the interval has passed, the next subscribe mails again: four more make five in the day.
        for (var i = 0; i < 4; i++)
        {
            await AgeAsync(subscriptionId, TimeSpan.FromMinutes(11), window: false);
            await tenant.SubscribeAsync(email);
        }
        // The sixth in the same day is held back even after the interval.
        await AgeAsync(subscriptionId, TimeSpan.FromMinutes(11), window: false);
        await tenant.SubscribeAsync(email);
        await DrainedAsync(subscriptionId);
        Assert.Equal(5, await MailsToAsync(email));

        // A day later the window starts over.
        await AgeAsync(subscriptionId, TimeSpan.FromHours(25), window: true);
        await tenant.SubscribeAsync(email);
        await DrainedAsync(subscriptionId);
        Assert.Equal(6, await MailsToAsync(email));

        var trail = await mc.WithDbAsync(db => db.ConsentRecords.Where(c => c.TenantId == Guid.Parse(tenant.TenantId)).OrderBy(c => c.Id)
            .Select(c => new { c.Action, c.Source, c.Details }).ToListAsync());
        Assert.Equal(10, trail.Count(c => c.Action == "subscribe"));
        var held = trail.Where(c => c.Action == "confirmation_mail_suppressed").ToList();
        Assert.Equal(4, held.Count); // three within the interval, one over the day's limit
        Assert.All(held, c => Assert.Equal("api", c.Source));
        Assert.Contains("\"mails_in_window\": 5", held[^1].Details);
        Assert.Equal(10 - 4, await mc.WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.SubscriptionId == subscriptionId)));
    }

    [Fact]
    public async Task Concurrent_subscribes_of_one_address_queue_one_mail()
    {
        var tenant = await mc.CreateTenantAsync();
        var email = NewEmail();
        await tenant.SubscribeAsync(email); // the subscription exists: the rest race on its row
        var subscriptionId = await mc.WithDbAsync(db => db.Subscriptions.Where(s => s.ListId == Guid.Parse(tenant.ListId)).Select(s => s.Id).SingleAsync());
        await AgeAsync(subscriptionId, TimeSpan.FromMinutes(11), window: false);

        await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => tenant.SubscribeAsync(email)));

        Assert.Equal(2, await mc.WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.SubscriptionId == subscriptionId)));
        Assert.Equal(11, await mc.WithDbAsync(db => db.ConsentRecords.CountAsync(c => c.TenantId == Guid.Parse(tenant.TenantId) && c.Action == "confirmation_mail_suppressed")));
    }

    [Fact]
    public async Task The_limit_is_per_list_so_another_list_still_mails()
    {
        var tenant = await mc.CreateTenantAsync();
        using var admin = mc.Http(await mc.AdminTokenAsync());
        var second = await MemberCenterFixture.ReadAsync<MailingListResponse>(await admin.PostAsJsonAsync($"admin/tenants/{tenant.TenantId}/lists", new CreateListRequest("Daily"), MemberCenterFixture.Json));
        var email = NewEmail();
        await tenant.SubscribeAsync(email);
        await tenant.SubscribeAsync(email); // held back
        using var api = tenant.Api();
        await MemberCenterFixture.ReadAsync<SubscribeResponse>(await api.PostAsJsonAsync("newsletter/subscribe", new { list_id = second.ListId, email }));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await MailsToAsync(email) < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "no mail for the second list");
            await Task.Delay(200);
        }
        var subjects = (await mc.Mail.ListAsync()).Where(m => m.To.Contains(email)).Select(m => m.Subject).Order().ToList();
        Assert.Equal(["Please confirm your subscription to Daily", "Please confirm your subscription to Weekly"], subjects);
    }

    [Fact]
    public async Task The_tenants_own_confirm_token_is_audited_as_api_and_the_mails_link_as_link()
    {
        var tenant = await mc.CreateTenantAsync();
        var byApi = NewEmail();
        var sub = await tenant.SubscribeAsync(byApi);
        await tenant.ConfirmAsync(sub.ConfirmToken!); // the token from the subscribe answer, used by the tenant

        var byMail = NewEmail();
        await tenant.SubscribeAsync(byMail);
        var mail = await mc.Mail.WaitForMailAsync(m => m.To.Contains(byMail), TimeSpan.FromSeconds(30));
        var start = mail.Text!.IndexOf("/newsletter/confirm?token=", StringComparison.Ordinal);
        var token = mail.Text[(start + "/newsletter/confirm?token=".Length)..].Split(['\r', '\n', ' '])[0];
        await tenant.ConfirmAsync(token);

        var confirms = await mc.WithDbAsync(db => (from c in db.ConsentRecords
                                                   join p in db.Subscribers on c.SubscriberId equals p.Id
                                                   where c.TenantId == Guid.Parse(tenant.TenantId) && c.Action == "confirm"
                                                   select new { p.Email, c.Source }).ToListAsync());
        Assert.Equal("api", confirms.Single(c => c.Email == byApi).Source);
        Assert.Equal("link", confirms.Single(c => c.Email == byMail).Source);
    }
}
