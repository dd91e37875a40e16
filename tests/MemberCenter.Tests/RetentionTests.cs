using MemberCenter.Features.Privacy;
using MemberCenter.Features.Retention;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace MemberCenter.Tests;

[Collection(MemberCenterCollection.Name)]
public sealed class RetentionTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task Sweep_deletes_long_expired_tokens_and_old_completed_outbox_rows_and_keeps_the_rest()
    {
        var tenant = await mc.CreateTenantAsync("Retention");
        var oldEmail = $"old-{Guid.NewGuid():N}@example.com";
        var recentEmail = $"recent-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(oldEmail);
        await tenant.SubscribeAsync(recentEmail);
        await tenant.UnsubscribeTokenAsync(oldEmail);
        var old = await SubscriptionIdAsync(tenant.ListId, oldEmail);
        var recent = await SubscriptionIdAsync(tenant.ListId, recentEmail);
        // Both confirmation mails sent first, so the dispatcher does not complete a row after it was back-dated.
        var sent = 0;
        for (var i = 0; i < 600 && (sent = await mc.WithDbAsync(db => db.OutboxMessages.CountAsync(m => (m.SubscriptionId == old || m.SubscriptionId == recent) && m.CompletedAt != null))) < 2; i++)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        Assert.True(sent == 2, $"{sent} of the 2 confirmation mails were sent within 60 s");

        // The old subscription's tokens expired 31 days ago and its confirmation mail completed 31 days ago; the recent
        // one's token expired only yesterday (still inside the 30-day grace) and its mail went out just now.
        await ExecuteAsync("UPDATE subscription_tokens SET expires_at = now() - interval '31 days' WHERE subscription_id = $1", old);
        await ExecuteAsync("UPDATE outbox_messages SET completed_at = now() - interval '31 days' WHERE subscription_id = $1", old);
        await ExecuteAsync("UPDATE subscription_tokens SET expires_at = now() - interval '1 day' WHERE subscription_id = $1", recent);

        // Calls to Send Engine (export/erasure): acknowledged 31 days ago, acknowledged yesterday, and one still open.
        var tenantId = Guid.Parse(tenant.TenantId);
        var now = DateTimeOffset.UtcNow;
        SendEngineRequest Request(DateTimeOffset? completedAt) => new()
        {
            TenantId = tenantId, Kind = SendEngineRequestKinds.Erase, AddressHash = Guid.NewGuid().ToByteArray(),
            Email = completedAt is null ? "open@example.com" : null, CreatedAt = now.AddDays(-40),
            NextAttemptAt = now.AddDays(1), CompletedAt = completedAt, Outcome = completedAt is null ? null : "done",
        };
        SendEngineRequest[] requests = [Request(now.AddDays(-31)), Request(now.AddDays(-1)), Request(null)];
        await mc.WithDbAsync(async db => { db.AddRange(requests); return await db.SaveChangesAsync(); });

        var recentTokens = await CountAsync<SubscriptionToken>(t => t.SubscriptionId == recent);
        Assert.True(recentTokens >= 1);

        var result = await mc.Services.GetRequiredService<RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Tokens >= 2, $"deleted {result.Tokens} tokens");
        Assert.True(result.OutboxMessages >= 1, $"deleted {result.OutboxMessages} outbox rows");
        Assert.Equal(0, await CountAsync<SubscriptionToken>(t => t.SubscriptionId == old));
        Assert.Equal(recentTokens, await CountAsync<SubscriptionToken>(t => t.SubscriptionId == recent));
        Assert.Equal(0, await mc.WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.SubscriptionId == old)));
        Assert.Equal(1, await mc.WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.SubscriptionId == recent)));
        Assert.Equal(1, result.SendEngineRequests);
        Assert.Equal([requests[1].Id, requests[2].Id],
            await mc.WithDbAsync(db => db.Set<SendEngineRequest>().Where(r => r.TenantId == tenantId).OrderBy(r => r.Id).Select(r => r.Id).ToListAsync()));
        // The subscriptions and their consent trail stay.
        Assert.Equal(2, await mc.WithDbAsync(db => db.Subscriptions.CountAsync(s => s.Id == old || s.Id == recent)));
        Assert.True(await mc.WithDbAsync(db => db.ConsentRecords.CountAsync(c => c.ListId == Guid.Parse(tenant.ListId))) >= 2);
    }

    [Fact]
    public async Task Sweep_deletes_expired_oauth_codes_and_refresh_tokens_with_their_sign_ins_and_keeps_live_ones()
    {
        var tenant = await mc.CreateTenantAsync("Retention OAuth");
        var gone = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Newsletter.Contracts.Roles.Viewer));
        var kept = await PersonClient.CreatePersonAsync(mc, memberships: (tenant.TenantId, Newsletter.Contracts.Roles.Viewer));
        foreach (var person in new[] { gone, kept })
        {
            using var client = new PersonClient(mc);
            await client.SignInAsync(person.Email!);
        }
        async Task<long> TokensOfAsync(Guid subject)
        {
            await using var conn = new NpgsqlConnection(mc.ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("""
                SELECT (SELECT count(*) FROM "OpenIddictTokens" WHERE subject = $1) + (SELECT count(*) FROM "OpenIddictAuthorizations" WHERE subject = $1)
                """, conn) { Parameters = { new() { Value = subject.ToString() } } };
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        // A code and a refresh token each, and the sign-in (ad-hoc authorization) they belong to; no access token rows.
        Assert.Equal(3, await TokensOfAsync(gone.Id));
        foreach (var sql in new[]
        {
            "UPDATE \"OpenIddictTokens\" SET expiration_date = now() - interval '31 days' WHERE subject = $1",
            "UPDATE \"OpenIddictAuthorizations\" SET creation_date = now() - interval '31 days' WHERE subject = $1",
        })
        {
            await using var conn = new NpgsqlConnection(mc.ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, conn) { Parameters = { new() { Value = gone.Id.ToString() } } };
            Assert.True(await cmd.ExecuteNonQueryAsync() >= 1, sql);
        }

        var result = await mc.Services.GetRequiredService<RetentionSweeper>().SweepAsync(TestContext.Current.CancellationToken);

        Assert.True(result.OAuthTokens >= 3);
        Assert.Equal(0, await TokensOfAsync(gone.Id));
        Assert.Equal(3, await TokensOfAsync(kept.Id));
    }

    private Task<int> CountAsync<T>(System.Linq.Expressions.Expression<Func<T, bool>> predicate) where T : class =>
        mc.WithDbAsync(db => db.Set<T>().CountAsync(predicate));

    private Task<Guid> SubscriptionIdAsync(string listId, string email) =>
        mc.WithDbAsync(db => (from s in db.Subscriptions
                              join p in db.Subscribers on s.SubscriberId equals p.Id
                              where s.ListId == Guid.Parse(listId) && p.Email == email
                              select s.Id).SingleAsync());

    private async Task ExecuteAsync(string sql, Guid subscriptionId)
    {
        await using var conn = new NpgsqlConnection(mc.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn) { Parameters = { new() { Value = subscriptionId } } };
        Assert.True(await cmd.ExecuteNonQueryAsync() >= 1, sql);
    }
}
